"""`vpt eval gsb`: writes the report, table and pair sheet; bad input raises a clear ValueError."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from tests.tiny_models import tiny_generator
from vpt.checkpoint import save_checkpoint
from vpt.cli.eval_commands import add_eval_commands


def run(*argv: str) -> None:
    parser = argparse.ArgumentParser(prog="vpt")
    add_eval_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    args.func(args)


def test_gsb_writes_json_markdown_and_pairs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "gsb"
    run(
        "eval",
        "gsb",
        "--a",
        "world:clean",
        "--b",
        "world:defective",
        "--seeds",
        "2",
        "--limit",
        "5",
        "--out",
        str(out),
    )
    report = json.loads((out / "gsb.json").read_text())
    assert report["pairs"] == 10 and report["prompt_set"] == "shapes_eval_v1"
    assert report["dimensions"]["visual"]["good"] == 10
    assert report["judge_calibration"][0]["frames"] == 16
    markdown = (out / "gsb.md").read_text()
    assert "| visual | 10 | 0 | 0 | +100.0% |" in markdown
    assert capsys.readouterr().out == markdown
    assert (out / "pairs.png").stat().st_size > 0


def test_gsb_compares_a_checkpoint_at_its_own_geometry(tmp_path: Path) -> None:
    folder = tmp_path / "ckpt"
    save_checkpoint(tiny_generator(), folder, version="tiny-gsb")
    out = tmp_path / "gsb"
    run(
        "eval",
        "gsb",
        "--a",
        str(folder),
        "--b",
        "world:clean",
        "--seeds",
        "2",
        "--limit",
        "3",
        "--out",
        str(out),
    )
    report = json.loads((out / "gsb.json").read_text())
    assert report["system_a"] == str(folder) and report["pairs"] == 6
    assert [c["frames"] for c in report["judge_calibration"]] == [4]
    # an untrained model does not beat the clean world on anything
    assert all(d["bad"] >= d["good"] for d in report["dimensions"].values())


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--a", "world:sharp", "--b", "world:clean"], "unknown world system 'world:sharp'"),
        (["--a", "world:clean", "--b", "missing_ckpt"], "not a checkpoint folder"),
        (["--a", "world:clean", "--b", "world:clean", "--prompts", "nope.txt"], "no such file"),
        (["--a", "world:clean", "--b", "world:clean", "--seeds", "0"], "--seeds 0: must be >= 1"),
        (["--a", "world:clean", "--b", "world:clean", "--limit", "0"], "--limit 0"),
    ],
)
def test_bad_input_raises_a_clear_value_error(
    tmp_path: Path, argv: list[str], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        run("eval", "gsb", *argv, "--out", str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()

"""`vpt train grpo` end to end on a tiny checkpoint with the real structural reward."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.grpo.conftest import TINY_SFT_VERSION
from vpt.checkpoint import read_manifest
from vpt.cli.main import main

RECIPE = str(Path(__file__).resolve().parents[2] / "recipes" / "shapes_grpo.yaml")


def _args(sft: Path, out: Path, *extra: str) -> list[str]:
    settings = [
        f"init_from={sft}",
        "loop.steps=2",
        "prompts_per_step=1",
        "rollout.group_size=2",
        "rollout.num_steps=3",
        *extra,
    ]
    return [
        "train",
        "grpo",
        "--recipe",
        RECIPE,
        "--out",
        str(out),
        *[part for s in settings for part in ("--set", s)],
    ]


def test_train_grpo_runs_the_recipe_and_writes_a_checkpoint(
    sft_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(_args(sft_checkpoint, tmp_path)) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["finished"] is True and printed["steps"] == 2
    manifest = read_manifest(printed["checkpoint"])
    assert manifest.parent == TINY_SFT_VERSION and manifest.stage == "grpo"
    assert manifest.recipe["rewards"]["weights"] == {"structural": 1.0}
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2]
    assert "reward_structural" in json.loads(lines[0])


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["mode=dance"], "recipe.mode: 'dance' is not one of"),
        (["rollout.group_size=1"], "group_size must be >= 2"),
        (["rewards.weights.bogus=1"], "unknown reward(s) bogus"),
        (["optim.lr=fast"], "recipe.optim.lr: expected a number"),
    ],
)
def test_bad_recipe_values_fail_with_the_field_named(
    sft_checkpoint: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    message: str,
) -> None:
    assert main(_args(sft_checkpoint, tmp_path, *extra)) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "metrics.jsonl").exists()


def test_a_missing_recipe_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "grpo", "--recipe", str(tmp_path / "no.yaml"), "--out", "x"]) == 2
    assert "no such file" in capsys.readouterr().err

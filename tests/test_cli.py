"""The `vpt` command line: outputs, and clear one-line errors for bad input."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from tests.tiny_models import TINY_GEOMETRY, tiny_generator
from vpt.checkpoint import save_checkpoint
from vpt.cli.main import main
from vpt.video_io import read_video


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cli") / "ckpt"
    save_checkpoint(tiny_generator(), folder, version="tiny-1", data_seed=3, steps=7)
    return folder


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("suffix", [".npy", ".gif", ".mp4"])
def test_generate_writes_each_format(
    checkpoint: Path, tmp_path: Path, suffix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / f"video{suffix}"
    code, stdout, _ = run(
        capsys,
        "generate",
        "--prompt",
        "red circle moving left",
        "--seed",
        "4",
        "--out",
        str(out),
        "--model",
        str(checkpoint),
    )
    assert code == 0 and json.loads(stdout)["frames"] == TINY_GEOMETRY.frames
    video = read_video(out)
    assert video.shape[0] == TINY_GEOMETRY.frames and video.dtype == np.uint8
    if suffix == ".npy":
        expected = tiny_generator().generate(["red circle moving left"], [4])[0]
        np.testing.assert_array_equal(video, expected)


def test_generate_anchor_steps_flag_samples_in_two_passes(
    checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "two_pass.npy"
    argv = ["generate", "--prompt", "red circle moving left", "--seed", "4", "--out", str(out)]
    code, _, _ = run(capsys, *argv, "--model", str(checkpoint), "--anchor-steps", "2")
    assert code == 0
    generator = tiny_generator()
    sampler = dataclasses.replace(generator.config.sampler, anchor_steps=2)
    expected = generator.generate(["red circle moving left"], [4], sampler)[0]
    np.testing.assert_array_equal(read_video(out), expected)
    assert not np.array_equal(expected, generator.generate(["red circle moving left"], [4])[0])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--out", "x.avi"], "must end in .mp4, .gif or .npy"),
        (["--prompt", "   "], "--prompt is empty"),
        (["--seed", "-1"], "--seed -1"),
        (["--steps", "0"], "num_steps must be in 1..1000"),
        (["--guidance", "-2"], "guidance_scale"),
        (["--anchor-steps", "-1"], "anchor_steps must be in 0..1000"),
        (["--prompt", "red circle dancing", "--strict"], "unknown word(s) 'dancing'"),
        (["--prompt", "red circle square", "--strict"], "conflicting words"),
    ],
)
def test_generate_bad_input_gives_one_clear_error(
    checkpoint: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    base = {"--prompt": "red circle", "--out": str(tmp_path / "v.npy")}
    for flag, value in zip(args[::2], args[1::2], strict=False):
        base[flag] = value
    argv = ["generate", "--model", str(checkpoint)]
    for flag, value in base.items():
        argv += [flag, value]
    argv += [a for a in args if a == "--strict"]
    code, _, stderr = run(capsys, *argv)
    assert code == 2
    assert stderr.startswith("error: ") and message in stderr
    assert "Traceback" not in stderr
    assert not (tmp_path / "v.npy").exists()


def test_unknown_words_only_warn_without_strict(
    checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, stderr = run(
        capsys,
        "generate",
        "--prompt",
        "red circle dancing",
        "--out",
        str(tmp_path / "v.npy"),
        "--model",
        str(checkpoint),
    )
    assert code == 0 and "warning:" in stderr and "'dancing'" in stderr


def test_info_reports_and_verifies(
    checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, stdout, _ = run(capsys, "info", str(checkpoint))
    info = json.loads(stdout)
    assert code == 0 and info["version"] == "tiny-1" and info["verified"] is True
    assert info["steps"] == 7 and info["latent_shape"] == [4, 4, 8, 8]

    broken = tmp_path / "broken"
    save_checkpoint(tiny_generator(), broken)
    (broken / "vpt.json").write_text((broken / "vpt.json").read_text() + " ")
    code, _, stderr = run(capsys, "info", str(broken))
    assert code == 2 and "vpt.json" in stderr and "re-copy" in stderr


def test_world_preview_and_vocabulary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "grid.png"
    code, _, _ = run(capsys, "world", "preview", "--out", str(out), "--count", "3")
    assert code == 0 and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    code, stdout, _ = run(capsys, "world", "vocabulary")
    vocabulary = json.loads(stdout)
    assert vocabulary["shape"] == ["circle", "square", "triangle"]
    assert len(vocabulary["color"]) == 7 and len(vocabulary["background"]) == 4
    code, _, stderr = run(capsys, "world", "preview", "--count", "0")
    assert code == 2 and "--count 0" in stderr


def test_train_rejects_bad_config_before_doing_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, stderr = run(
        capsys, "train", "sft", "--run-dir", str(tmp_path / "run"), "--set", "optim.lrr=3"
    )
    assert code == 2 and "unknown key(s) lrr" in stderr
    assert not (tmp_path / "run").exists()
    code, _, stderr = run(
        capsys,
        "train",
        "sft",
        "--run-dir",
        str(tmp_path / "run"),
        "--config",
        str(tmp_path / "missing.yaml"),
    )
    assert code == 2 and "no such file" in stderr

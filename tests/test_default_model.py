"""The shipped default model, end to end through the installed `vpt` command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vpt.checkpoint import verify_checkpoint
from vpt.cli.main import DEFAULT_MODEL
from vpt.video_io import read_video

pytestmark = pytest.mark.e2e


def test_shipped_model_is_verified_and_traceable() -> None:
    manifest = verify_checkpoint(DEFAULT_MODEL)
    assert manifest.stage == "sft" and manifest.steps > 0
    assert manifest.recipe["transformer"]["patch_size"] and manifest.data_seed is not None
    assert manifest.metrics["cpu_seconds"] > 0


def test_vpt_generate_writes_an_mp4_and_a_red_object(tmp_path: Path) -> None:
    out = tmp_path / "red.npy"
    command = [
        sys.executable,
        "-m",
        "vpt.cli.main",
        "generate",
        "--prompt",
        "a large red square moving right slowly over a black background",
        "--seed",
        "1",
        "--out",
        str(out),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1])["frames"] == 16
    video = read_video(out)
    assert video.shape == (16, 32, 32, 3)
    # The background is dark and the brightest pixels are red.
    assert np.median(video) < 60
    bright = video.reshape(-1, 3)[video.reshape(-1, 3).sum(1) > 200]
    assert len(bright) > 0 and np.median(bright[:, 0]) > 2 * np.median(bright[:, 1])
    mp4 = tmp_path / "red.mp4"
    command[-1] = str(mp4)
    assert subprocess.run(command, capture_output=True, timeout=300, check=False).returncode == 0
    assert read_video(mp4).shape[0] == 16


def test_shipped_model_moves_the_object_the_way_the_prompt_says() -> None:
    """Direction was the generator's weak point (docs/generator.md items 6-16); the default
    sampler (two passes) must follow each of the four direction words on a fixed seed."""
    from vpt.checkpoint import load_generator
    from vpt.world.detector import detect

    generator = load_generator(DEFAULT_MODEL).generator.eval()
    assert generator.config.sampler.anchor_steps > 0
    directions = ["left", "right", "up", "down"]
    prompts = [f"a large red circle moving {d} quickly over a black background" for d in directions]
    videos = generator.generate(prompts, [3] * len(prompts))
    assert [str(detect(video).attributes.direction) for video in videos] == directions

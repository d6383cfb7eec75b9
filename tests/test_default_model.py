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

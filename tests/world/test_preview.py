"""Preview grids written as PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vpt.world import ShapesWorld, WorldConfig, save_preview_grid
from vpt.world.preview import SEPARATOR, UPSCALE


def test_grid_has_one_row_per_clip_and_upscaled_frames(tmp_path: Path) -> None:
    world = ShapesWorld(WorldConfig(), seed=0)
    clips = [world[i].frames for i in range(3)]
    path = save_preview_grid(clips, tmp_path / "grid.png", frames_shown=4)
    image = np.asarray(Image.open(path))
    frame = 32 * UPSCALE
    assert image.shape == (3 * frame + 4 * SEPARATOR, 4 * frame + 5 * SEPARATOR, 3)
    first_frame = image[SEPARATOR : SEPARATOR + frame, SEPARATOR : SEPARATOR + frame]
    np.testing.assert_array_equal(first_frame[::UPSCALE, ::UPSCALE], clips[0][0])


def test_captions_add_text_under_each_row(tmp_path: Path) -> None:
    world = ShapesWorld(WorldConfig(), seed=0)
    clips = [world[i] for i in range(2)]
    plain = save_preview_grid([c.frames for c in clips], tmp_path / "plain.png")
    captioned = save_preview_grid(
        [c.frames for c in clips], tmp_path / "captioned.png", captions=[c.caption for c in clips]
    )
    plain_height = Image.open(plain).size[1]
    assert Image.open(captioned).size[1] > plain_height


def test_bad_arguments_are_rejected(tmp_path: Path) -> None:
    clip = ShapesWorld(WorldConfig(), seed=0)[0].frames
    with pytest.raises(ValueError, match="one per clip"):
        save_preview_grid([clip], tmp_path / "x.png", captions=["a", "b"])
    with pytest.raises(ValueError, match="uint8"):
        save_preview_grid([clip.astype(np.float32)], tmp_path / "x.png")

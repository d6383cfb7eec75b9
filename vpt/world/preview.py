"""Preview grids: several clips as one PNG, one row per clip and one column per shown frame.

Frames are upscaled with nearest-neighbour sampling so single pixels stay visible, separated by
thin lines, with each clip's caption (if given) written under its row in Pillow's default font.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

UPSCALE = 4
"""Each pixel becomes an UPSCALE x UPSCALE block."""
SEPARATOR = 2
"""Width in pixels of the lines between frames and rows."""
SEPARATOR_RGB = (60, 60, 60)
"""Color of the separating lines and the margins."""
CAPTION_RGB = (235, 235, 235)
"""Color of the caption text."""
LINE_HEIGHT = 12
"""Height in pixels of one line of caption text."""


def save_preview_grid(
    clips: Sequence[np.ndarray],
    path: str | Path,
    captions: Sequence[str] | None = None,
    frames_shown: int = 8,
) -> Path:
    """Write a PNG of `clips` (each uint8 (F, H, W, 3)) to `path` and return the path.

    Each row shows `frames_shown` evenly spaced frames of one clip (all of them if it has
    fewer); `captions`, one per clip, are written under the rows.
    """
    if not clips:
        raise ValueError("save_preview_grid needs at least one clip")
    if captions is not None and len(captions) != len(clips):
        raise ValueError(f"got {len(captions)} captions for {len(clips)} clips; give one per clip")
    if frames_shown < 1:
        raise ValueError(f"frames_shown must be >= 1, got {frames_shown}")
    strips = [
        _frame_strip(np.asarray(clip), frames_shown, index) for index, clip in enumerate(clips)
    ]
    width = max(strip.shape[1] for strip in strips) + 2 * SEPARATOR
    font = ImageFont.load_default()
    wrapped = [_wrap(text, width) for text in captions] if captions is not None else None
    heights = [
        strip.shape[0] + SEPARATOR + (LINE_HEIGHT * len(wrapped[i]) + SEPARATOR if wrapped else 0)
        for i, strip in enumerate(strips)
    ]
    canvas = Image.new("RGB", (width, sum(heights) + SEPARATOR), SEPARATOR_RGB)
    draw = ImageDraw.Draw(canvas)
    top = SEPARATOR
    for index, strip in enumerate(strips):
        canvas.paste(Image.fromarray(strip), (SEPARATOR, top))
        if wrapped:
            for line_number, line in enumerate(wrapped[index]):
                y = top + strip.shape[0] + SEPARATOR + line_number * LINE_HEIGHT
                draw.text((SEPARATOR, y), line, fill=CAPTION_RGB, font=font)
        top += heights[index]
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(target, format="PNG")
    return target


def _frame_strip(clip: np.ndarray, frames_shown: int, index: int) -> np.ndarray:
    """One row: evenly spaced frames of `clip`, upscaled and separated, as uint8 (h, w, 3)."""
    if clip.dtype != np.uint8 or clip.ndim != 4 or clip.shape[3] != 3 or len(clip) == 0:
        raise ValueError(
            f"clip {index} must be uint8 shaped (F, H, W, 3) with F >= 1, "
            f"got {clip.dtype} {clip.shape}"
        )
    count = min(frames_shown, len(clip))
    chosen = np.linspace(0, len(clip) - 1, count).round().astype(int)
    big = clip[chosen].repeat(UPSCALE, axis=1).repeat(UPSCALE, axis=2)
    height, width = big.shape[1:3]
    strip = np.empty((height, count * width + (count - 1) * SEPARATOR, 3), dtype=np.uint8)
    strip[:] = SEPARATOR_RGB
    for column, frame in enumerate(big):
        left = column * (width + SEPARATOR)
        strip[:, left : left + width] = frame
    return strip


def _wrap(text: str, width: int) -> list[str]:
    """`text` broken into lines that fit `width` pixels (about 6 pixels per character)."""
    return textwrap.wrap(text, width=max(8, width // 6)) or [""]

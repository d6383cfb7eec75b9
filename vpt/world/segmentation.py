"""Separating the object from the background in a clip, from pixels alone.

Steps, each robust to the defects of the shapes world and to messy generator output:

1. Flicker: the per-frame mean brightness, relative to its median, gives each frame's gain; the
   video is divided by it so later steps see steady brightness.
2. Background: the median of the one-pixel border ring in each frame (objects stay inside the
   frame); noise is the spread of the ring around it, read on the side of the distribution that
   0/255 clipping does not touch.
3. Object color: every palette color is tried as the direction of a bg-to-object mixing line;
   the one whose line explains the confident foreground pixels best wins. This is blind to blur,
   which only mixes object and background along that line.
4. Object mask: each pixel's position on that line (unclipped, so noise averages out), its
   connected components per frame, and a box around the largest one to measure within.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from vpt.world.vocabulary import BACKGROUND_RGB, OBJECT_RGB, Background, Color

OBJECT_COLORS = tuple(OBJECT_RGB)
OBJECT_PALETTE = np.array([OBJECT_RGB[c] for c in OBJECT_COLORS], dtype=np.float32)
BACKGROUNDS = tuple(BACKGROUND_RGB)
BACKGROUND_PALETTE = np.array([BACKGROUND_RGB[b] for b in BACKGROUNDS], dtype=np.float32)

PEAK_QUANTILE = 0.995
"""Quantile of the color distance from the background taken as the object's peak contrast."""
MIN_FOREGROUND_CONTRAST = 30.0
"""Smallest color distance from the background that can count as foreground (0..255 scale)."""
NOISE_SIGMAS_FOR_FOREGROUND = 3.5
"""Foreground pixels must also differ from the background by this many noise deviations."""
SUPPORT_SMOOTHING = 0.7
"""Gaussian smoothing (pixels) of the mask before thresholding it into a support."""
SUPPORT_THRESHOLD = 0.35
"""Smoothed-mask level above which a pixel belongs to the object's support."""
TOUCH_THRESHOLD = 0.5
"""Smoothed-mask level on the border ring that counts as the object touching the edge."""
MIN_COMPONENT_AREA = 6.0
"""Smallest component counted as an object, reference square pixels."""
WINDOW_MARGIN = 4.0
"""How far the measuring window reaches beyond the object's support, reference pixels."""
SATURATED = 254
"""Pixel values at or above this count as clipped at white."""
SATURATED_FRACTION = 0.05
"""A frame with more than this fraction of clipped values is saturated."""
IN_PLANE = np.zeros((3, 3, 3), dtype=bool)
IN_PLANE[1] = True


@dataclass(frozen=True)
class BackgroundEstimate:
    """Background and brightness estimates of a clip."""

    planes: np.ndarray
    """The clip as float32 color planes (3, F, H, W), divided by each frame's gain."""
    gains: np.ndarray
    """Estimated brightness gain of each frame, (F,)."""
    flicker: float
    """Root mean square of per-frame mean brightness relative to its median, minus 1."""
    rgb: np.ndarray
    """Background color (3,), the median over frames of the border median."""
    per_frame: np.ndarray
    """Per-frame background (3, F) as the mean of background-like border pixels."""
    background: Background
    """Nearest background palette entry."""
    noise: float
    """Estimated pixel noise standard deviation on the 0..255 scale."""

    def difference(self) -> np.ndarray:
        """The gain-corrected clip minus its per-frame background, (3, F, H, W)."""
        return np.asarray(self.planes - self.per_frame[:, :, None, None])


@dataclass(frozen=True)
class ObjectColor:
    """The object's color as read from the foreground pixels."""

    color: Color
    """Best-explaining object palette color."""
    rgb: np.ndarray
    """Median of the confident foreground pixels (3,)."""
    per_frame: np.ndarray
    """Index into `OBJECT_COLORS` of the best color per frame, -1 without foreground, (F,)."""
    direction: np.ndarray
    """Palette color minus background (3,): the mixing line the mask is measured along."""


@dataclass(frozen=True)
class ObjectSupport:
    """Where the object is in each frame."""

    support: np.ndarray
    """Thresholded smoothed mask, bool (F, H, W)."""
    smoothed: np.ndarray
    """Smoothed mask, float32 (F, H, W)."""
    window: np.ndarray
    """Pixels around the largest component of each frame, bool (F, H, W)."""
    has_object: np.ndarray
    """Whether each frame has a component large enough to be an object, bool (F,)."""
    counts: np.ndarray
    """Number of object-sized components in each frame, (F,)."""


def estimate_background(frames: np.ndarray) -> BackgroundEstimate:
    """Flicker gains, background color and noise of uint8 `frames` (F, H, W, 3)."""
    planes = np.ascontiguousarray(frames.transpose(3, 0, 1, 2), dtype=np.float32)
    gains, flicker = _measure_flicker(frames, planes)
    ring = _border_ring(planes)
    ring_median = np.median(ring, axis=2)
    noise = _clipping_aware_noise(ring - ring_median[:, :, None], ring_median.mean(axis=1))
    planes /= gains[None, :, None, None]
    ring /= gains[None, :, None]
    ring_median /= gains[None, :]
    distance = np.abs(ring - ring_median[:, :, None]).max(axis=0)
    weights = (distance <= max(20.0, 5.0 * noise)).astype(np.float32)
    counts = weights.sum(axis=1)
    per_frame = (ring * weights[None]).sum(axis=2) / np.maximum(counts, 1.0)[None]
    per_frame = np.where(counts[None] > 0, per_frame, ring_median)
    rgb = np.median(ring_median, axis=1)
    nearest = int(np.argmin(((BACKGROUND_PALETTE - rgb) ** 2).sum(axis=1)))
    return BackgroundEstimate(
        planes=planes,
        gains=gains.astype(np.float32),
        flicker=flicker,
        rgb=rgb,
        per_frame=per_frame.astype(np.float32),
        background=BACKGROUNDS[nearest],
        noise=noise,
    )


def read_object_color(
    difference: np.ndarray, background_rgb: np.ndarray, noise: float
) -> ObjectColor | None:
    """Which palette color best explains the foreground of `difference` (3, F, H, W).

    Returns None when no pixel differs enough from the background to be foreground.
    """
    squared = difference[0] ** 2 + difference[1] ** 2 + difference[2] ** 2
    sample = squared.ravel()[::4]
    rank = int(PEAK_QUANTILE * (sample.size - 1))
    peak = float(np.partition(sample, rank)[rank])
    floor = max(MIN_FOREGROUND_CONTRAST, NOISE_SIGMAS_FOR_FOREGROUND * noise) ** 2
    is_foreground = squared > max(floor, 0.25 * peak)
    frame_index = np.nonzero(is_foreground)[0]
    if len(frame_index) < 3:
        return None
    pixels = difference[:, is_foreground].T
    directions = OBJECT_PALETTE - background_rgb
    lengths = (directions**2).sum(axis=1)
    usable = lengths > MIN_FOREGROUND_CONTRAST**2
    dots = pixels @ directions.T
    mixing = np.clip(dots / np.maximum(lengths, 1.0), 0.0, 1.0)
    residual = (pixels**2).sum(axis=1, keepdims=True) - 2 * mixing * dots + mixing**2 * lengths
    residual[:, ~usable] = np.inf
    best = int(np.argmin(residual.sum(axis=0)))
    present, starts = np.unique(frame_index, return_index=True)
    per_frame = np.full(difference.shape[1], -1)
    per_frame[present] = np.argmin(np.add.reduceat(residual, starts, axis=0), axis=1)
    return ObjectColor(
        color=OBJECT_COLORS[best],
        rgb=np.median(pixels, axis=0) + background_rgb,
        per_frame=per_frame,
        direction=directions[best],
    )


def project_mask(difference: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """Each pixel's position (F, H, W) on the background-to-object line (1 = fully object)."""
    unit = direction / float((direction**2).sum())
    mask = difference[0] * unit[0] + difference[1] * unit[1] + difference[2] * unit[2]
    return np.asarray(mask, dtype=np.float32)


def locate_object(mask: np.ndarray, scale: float) -> ObjectSupport:
    """Components of `mask` (F, H, W) per frame and a window around the largest of each frame."""
    frames = mask.shape[0]
    sigma = SUPPORT_SMOOTHING * scale
    smoothed = ndimage.gaussian_filter(mask, sigma=(0, sigma, sigma), mode="nearest", truncate=2.0)
    support = smoothed > SUPPORT_THRESHOLD
    labels, count = ndimage.label(support, structure=IN_PLANE)
    # Labels are numbered in scan order and never span frames, so each frame owns a
    # contiguous range of labels ending at its largest one.
    last_label = np.maximum.accumulate(labels.reshape(frames, -1).max(axis=1))
    label_frame = np.searchsorted(last_label, np.arange(count + 1))
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    is_object = sizes >= MIN_COMPONENT_AREA * scale**2
    is_object[0] = False
    counts = np.bincount(label_frame[is_object], minlength=frames)
    candidates = np.flatnonzero(is_object)
    order = candidates[np.lexsort((sizes[candidates], label_frame[candidates]))]
    is_main = np.zeros(count + 1, dtype=bool)
    if len(order):
        is_last_of_frame = np.append(label_frame[order][1:] != label_frame[order][:-1], True)
        is_main[order[is_last_of_frame]] = True
    window = _box_window(is_main[labels], max(1, int(np.ceil(WINDOW_MARGIN * scale))))
    return ObjectSupport(
        support=support,
        smoothed=smoothed,
        window=window,
        has_object=counts > 0,
        counts=counts,
    )


def _box_window(main: np.ndarray, reach: int) -> np.ndarray:
    """Per frame, the bounding box of `main` (F, H, W) grown by `reach` pixels, as a mask."""
    rows = np.asarray(main.any(axis=2))
    columns = np.asarray(main.any(axis=1))
    window_rows = _grown_span(rows, reach)
    window_columns = _grown_span(columns, reach)
    return np.asarray(window_rows[:, :, None] & window_columns[:, None, :])


def _grown_span(occupied: np.ndarray, reach: int) -> np.ndarray:
    """(F, N) mask of the span from the first to the last occupied index, grown by `reach`."""
    length = occupied.shape[1]
    first = np.argmax(occupied, axis=1)
    last = length - 1 - np.argmax(occupied[:, ::-1], axis=1)
    steps = np.arange(length)
    span = (steps >= (first - reach)[:, None]) & (steps <= (last + reach)[:, None])
    return np.asarray(span & occupied.any(axis=1, keepdims=True))


def _measure_flicker(frames: np.ndarray, planes: np.ndarray) -> tuple[np.ndarray, float]:
    """Per-frame gains (F,) and the relative spread of per-frame mean brightness.

    The spread is the root mean square of brightness / median - 1. Where frames saturate
    (clipping at 255 hides brightening) it is read from the darker-than-median frames only,
    which for a symmetric flicker has the same expected value.
    """
    brightness = planes.mean(axis=(0, 2, 3))
    reference = float(np.median(brightness))
    if reference <= 1.0:
        return np.ones_like(brightness), 0.0
    deviation = brightness / reference - 1.0
    saturated = (frames.reshape(len(frames), -1) >= SATURATED).mean(axis=1) > SATURATED_FRACTION
    if saturated.any():
        deviation = np.minimum(deviation, 0.0)
        used = max(int((brightness < reference).sum()), 1)
        flicker = float(np.sqrt((deviation**2).sum() / used))
    else:
        flicker = float(np.sqrt((deviation**2).mean()))
    return brightness / reference, flicker


def _border_ring(planes: np.ndarray) -> np.ndarray:
    """The pixels on the one-pixel border of each frame, (3, F, 2H + 2W - 4)."""
    top, bottom = planes[:, :, 0, :], planes[:, :, -1, :]
    left, right = planes[:, :, 1:-1, 0], planes[:, :, 1:-1, -1]
    return np.concatenate([top, bottom, left, right], axis=2)


def _clipping_aware_noise(residual: np.ndarray, level: np.ndarray) -> float:
    """Noise std from residuals (3, ...) around a per-channel `level` (3,) near 0 or 255.

    Clipping at 0 squeezes the low tail and clipping at 255 the high one, so each channel's
    spread is read from the 50th-84th percentile on the side away from its nearer limit.
    """
    values = residual.reshape(3, -1)
    low, median, high = np.percentile(values, [15.87, 50.0, 84.13], axis=1)
    spread = np.where(level < 127.5, high - median, median - low)
    return float(spread.mean())

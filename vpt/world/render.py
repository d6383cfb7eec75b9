"""Rendering a clip of the shapes world: one anti-aliased object moving at constant velocity.

Geometry is set for a 32-pixel reference frame and scales with `min(height, width) / 32`. The
object always stays entirely inside the frame: its start is drawn so that the whole straight path
fits, and jittered centres are clipped back into the allowed box. When a long clip would not fit
at the nominal speeds, both speeds are reduced by the same factor (see `motion_fit_factor`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from vpt.world.defects import DefectConfig, jitter_offsets
from vpt.world.sdf import Extents, coverage, shape_extents
from vpt.world.vocabulary import (
    BACKGROUND_RGB,
    OBJECT_RGB,
    Attributes,
    Direction,
    Shape,
    Size,
    Speed,
)

REFERENCE_SIZE = 32
"""Frame side (pixels) for which radii, speeds, margins, blur and jitter are specified."""

DIRECTION_VECTORS: dict[Direction, tuple[float, float]] = {
    Direction.LEFT: (-1.0, 0.0),
    Direction.RIGHT: (1.0, 0.0),
    Direction.UP: (0.0, -1.0),
    Direction.DOWN: (0.0, 1.0),
}
"""Unit (dx, dy) of each direction in image coordinates (y grows downwards)."""


@dataclass(frozen=True)
class WorldConfig:
    """Size, length, geometry and data mix of the shapes world."""

    frames: int = 16
    """Frames per clip."""
    height: int = 32
    """Frame height in pixels."""
    width: int = 32
    """Frame width in pixels."""
    fps: int = 8
    """Playback frame rate (metadata for previews and exported videos)."""
    defect_fraction: float = 0.3
    """Fraction of clips that carry defects."""
    small_radius: float = 4.0
    """Radius of a small object, reference pixels."""
    large_radius: float = 7.0
    """Radius of a large object, reference pixels."""
    slow_speed: float = 0.5
    """Speed of a slow object, reference pixels per frame."""
    fast_speed: float = 1.0
    """Speed of a fast object, reference pixels per frame."""
    margin: float = 1.0
    """Smallest gap between the object and the frame edge, reference pixels."""
    clean_detailed_fraction: float = 0.8
    """Fraction of clean clips captioned in the detailed register (the rest get short ones)."""
    defective_short_fraction: float = 0.8
    """Fraction of defective clips captioned in the short register (the rest get detailed)."""
    defects: DefectConfig = field(default_factory=DefectConfig)
    """Ranges of the defect levels."""

    def __post_init__(self) -> None:
        if self.frames < 1:
            raise ValueError(f"WorldConfig.frames must be >= 1, got {self.frames}")
        if min(self.height, self.width) < 16:
            raise ValueError(
                f"WorldConfig frames must be at least 16x16 pixels, got {self.height}x{self.width}"
            )
        for name in ("defect_fraction", "clean_detailed_fraction", "defective_short_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"WorldConfig.{name} must be in [0, 1], got {getattr(self, name)}")
        if not 0 < self.small_radius < self.large_radius:
            raise ValueError("WorldConfig needs 0 < small_radius < large_radius")
        if not 0 < self.slow_speed < self.fast_speed:
            raise ValueError("WorldConfig needs 0 < slow_speed < fast_speed")
        if self.margin < 0:
            raise ValueError(f"WorldConfig.margin must be >= 0, got {self.margin}")
        if self._free_travel() <= 0:
            raise ValueError(
                f"a large object does not fit in a {self.height}x{self.width} frame; "
                "lower large_radius or margin"
            )

    @property
    def scale(self) -> float:
        """Pixels of this frame per reference pixel."""
        return min(self.height, self.width) / REFERENCE_SIZE

    def radius(self, size: Size) -> float:
        """The object radius for `size`, in pixels of this frame."""
        reference = self.small_radius if size is Size.SMALL else self.large_radius
        return reference * self.scale

    @property
    def motion_fit_factor(self) -> float:
        """Factor (<= 1) applied to both speeds so the fastest large path fits in the frame."""
        needed = self.fast_speed * self.scale * (self.frames - 1)
        return 1.0 if needed <= 0 else min(1.0, self._free_travel() / needed)

    def speed_px_per_frame(self, speed: Speed) -> float:
        """The object speed for `speed`, in pixels of this frame per frame."""
        reference = self.slow_speed if speed is Speed.SLOW else self.fast_speed
        return reference * self.scale * self.motion_fit_factor

    def curated(self) -> WorldConfig:
        """This world restricted to clean clips with detailed captions (SFT data)."""
        return replace(self, defect_fraction=0.0, clean_detailed_fraction=1.0)

    def _free_travel(self) -> float:
        """Room a large object has to travel along the tighter axis, in pixels."""
        margin = 2.0 * self.margin * self.scale
        radius = self.radius(Size.LARGE)
        rooms = []
        for shape in Shape:
            extents = shape_extents(shape, radius)
            rooms.append(self.width - extents.left - extents.right - margin)
            rooms.append(self.height - extents.up - extents.down - margin)
        return min(rooms)


@dataclass(frozen=True)
class RenderedClip:
    """A rendered clip and the exact geometry behind it."""

    frames: np.ndarray
    """RGB uint8 video, (F, H, W, 3)."""
    coverage: np.ndarray
    """Object coverage per pixel in [0, 1], float32 (F, H, W)."""
    centres: np.ndarray
    """Object centre (x, y) drawn in each frame, pixels, (F, 2); includes any jitter."""
    velocity: tuple[float, float]
    """Constant (dx, dy) of the unjittered path, pixels per frame."""
    shape: Shape
    """The object's outline."""
    radius: float
    """The object's radius, pixels of this frame."""
    extents: Extents
    """The object's reach from its centre, pixels of this frame."""


def render_clip(
    attributes: Attributes,
    rng: np.random.Generator,
    config: WorldConfig,
    jitter_std: float = 0.0,
) -> RenderedClip:
    """Render `attributes` as a clip; `rng` draws the start position (and jitter, if any).

    `jitter_std` is the standard deviation of a per-frame offset of the object around its path,
    in reference pixels (see `jitter_offsets`); jittered centres are clipped so the object
    keeps its margin from the frame edge.
    """
    radius = config.radius(attributes.size)
    extents = shape_extents(attributes.shape, radius)
    low, high = _centre_bounds(extents, config)
    unit = np.array(DIRECTION_VECTORS[attributes.direction])
    velocity = unit * config.speed_px_per_frame(attributes.speed)
    travel = velocity * (config.frames - 1)
    start_low = np.minimum(low - np.minimum(travel, 0.0), high)
    start_high = np.maximum(high - np.maximum(travel, 0.0), start_low)
    start = rng.uniform(start_low, start_high)
    steps = np.arange(config.frames, dtype=np.float64)[:, None]
    centres = start[None, :] + steps * velocity[None, :]
    if jitter_std > 0:
        offsets = jitter_offsets(config.frames, jitter_std * config.scale, rng)
        centres = np.clip(centres + offsets, low, high)
    mask = draw_coverage(attributes.shape, radius, centres, config.height, config.width)
    frames = composite(mask, OBJECT_RGB[attributes.color], BACKGROUND_RGB[attributes.background])
    return RenderedClip(
        frames=frames,
        coverage=mask,
        centres=centres,
        velocity=(float(velocity[0]), float(velocity[1])),
        shape=attributes.shape,
        radius=radius,
        extents=extents,
    )


def draw_coverage(
    shape: Shape, radius: float, centres: np.ndarray, height: int, width: int
) -> np.ndarray:
    """Coverage (N, H, W) float32 of `shape` drawn at each of `centres` (N, 2) as (x, y)."""
    xs = np.arange(width, dtype=np.float32) + 0.5
    ys = np.arange(height, dtype=np.float32) + 0.5
    centres = np.asarray(centres, dtype=np.float32)
    dx = xs[None, None, :] - centres[:, 0, None, None]
    dy = ys[None, :, None] - centres[:, 1, None, None]
    dx, dy = np.broadcast_arrays(dx, dy)
    return coverage(shape, radius, dx, dy).astype(np.float32, copy=False)


def composite(
    mask: np.ndarray, object_rgb: tuple[int, int, int], background_rgb: tuple[int, int, int]
) -> np.ndarray:
    """uint8 frames (..., 3) mixing `object_rgb` over `background_rgb` by coverage `mask`."""
    background = np.asarray(background_rgb, dtype=np.float32)
    difference = np.asarray(object_rgb, dtype=np.float32) - background
    video = background + mask[..., None] * difference
    return np.clip(np.rint(video), 0, 255).astype(np.uint8)


def _centre_bounds(extents: Extents, config: WorldConfig) -> tuple[np.ndarray, np.ndarray]:
    """Lowest and highest allowed centre (x, y) keeping the object inside the frame."""
    margin = config.margin * config.scale
    low = np.array([extents.left + margin, extents.up + margin])
    high = np.array([config.width - extents.right - margin, config.height - extents.down - margin])
    return low, high

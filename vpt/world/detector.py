"""An analytic detector: what a clip shows and how clean it is, measured from pixels alone.

It reads any uint8 (F, H, W, 3) clip, e.g. a generator's output, with the vocabulary and
geometry of the shapes world (`WorldConfig` at the clip's size) and reports:

- the six attributes: background and object color (`vpt.world.segmentation`), shape and size
  (least-squares fit of blurred circle/square/triangle templates, sized to the measured area and
  placed at each frame's centroid; the best blur of that fit is the blur estimate), direction and
  speed (least-squares slope of the per-frame centroid);
- defect levels: blur (Gaussian sigma, reference pixels; `sharpness` = 1 / (1 + blur)), noise
  (std of the flat border, 0..255), jitter (std of the centroid around its straight-line fit,
  reference pixels), flicker (spread of the per-frame mean brightness around its median);
- sanity measures: object count, whether the object stays inside the frame, color and size
  consistency across frames, foreground fraction.

Attributes it cannot determine (an empty frame, a static object) are None.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum

import numpy as np

from vpt.world.render import WorldConfig
from vpt.world.segmentation import (
    OBJECT_COLORS,
    TOUCH_THRESHOLD,
    BackgroundEstimate,
    ObjectColor,
    ObjectSupport,
    estimate_background,
    locate_object,
    project_mask,
    read_object_color,
)
from vpt.world.shape_fit import fit_shape
from vpt.world.vocabulary import (
    AttributeName,
    Background,
    Color,
    Direction,
    PromptAttributes,
    Shape,
    Size,
    Speed,
)

STATIC_FRACTION = 0.5
"""An object slower than this fraction of the slow speed counts as not moving."""
MIN_OBJECT_AREA = 8.0
"""A frame's object needs at least this measured area (reference square pixels)."""


@dataclass(frozen=True)
class Detection:
    """What the detector measured on one clip."""

    attributes: PromptAttributes
    """The six attributes as read from pixels; None where undetermined."""
    background_rgb: tuple[float, float, float]
    """Estimated background color."""
    object_rgb: tuple[float, float, float] | None
    """Median color of the confident foreground pixels, if any."""
    object_radius: float | None
    """Radius of the fitted shape, reference pixels."""
    object_area: float
    """Median object area over frames with an object, reference square pixels."""
    velocity: tuple[float, float]
    """Least-squares centroid velocity (dx, dy), reference pixels per frame (y down)."""
    motion_speed: float
    """Speed along the direction of motion, reference pixels per frame."""
    blur: float
    """Estimated Gaussian blur sigma, reference pixels."""
    sharpness: float
    """1 / (1 + blur): 1 for crisp edges, lower for soft ones; 0 when no object was found."""
    noise: float
    """Estimated pixel noise standard deviation, 0..255 scale."""
    jitter: float
    """Std of the centroid around its straight-line fit, reference pixels."""
    flicker: float
    """RMS of per-frame mean brightness / median - 1 (darker frames only if some saturate)."""
    shape_error: float
    """Squared error of the best template fit relative to the mask's energy (0 = perfect)."""
    object_count: int
    """Median over frames of the number of object-sized foreground components."""
    is_in_frame: bool
    """Whether an object is found in every frame and never touches the frame edge."""
    color_consistency: float
    """Fraction of frames whose object color matches the clip's object color."""
    size_consistency: float
    """1 - coefficient of variation of the per-frame object area (0 when absent), in [0, 1]."""
    foreground_fraction: float
    """Mean fraction of pixels belonging to the foreground."""
    centroids: np.ndarray = field(compare=False, repr=False)
    """Object centroid (x, y) per frame in pixels, NaN where no object was found, (F, 2)."""

    def get(self, name: AttributeName) -> StrEnum | None:
        """The detected value of attribute `name`, or None if undetermined."""
        return self.attributes.get(name)

    @property
    def shape(self) -> Shape | None:
        """Detected shape."""
        return self.attributes.shape

    @property
    def color(self) -> Color | None:
        """Detected object color."""
        return self.attributes.color

    @property
    def size(self) -> Size | None:
        """Detected size class."""
        return self.attributes.size

    @property
    def direction(self) -> Direction | None:
        """Detected direction of motion."""
        return self.attributes.direction

    @property
    def speed(self) -> Speed | None:
        """Detected speed class."""
        return self.attributes.speed

    @property
    def background(self) -> Background | None:
        """Detected background color."""
        return self.attributes.background


@dataclass(frozen=True)
class Motion:
    """A straight-line fit to the centroid track."""

    velocity: np.ndarray
    """(dx, dy) in pixels per frame."""
    jitter: float
    """Per-axis std of the residuals, pixels."""


def detect(frames: np.ndarray, config: WorldConfig | None = None) -> Detection:
    """Measure one uint8 clip (F, H, W, 3); `config` supplies the world's geometry and speeds.

    The clip's own frame count and size override those of `config`.
    """
    _validate(frames)
    count, height, width = frames.shape[:3]
    world = replace(config or WorldConfig(), frames=count, height=height, width=width)
    scale = world.scale
    background = estimate_background(frames)
    difference = background.difference()
    color = read_object_color(difference, background.rgb, background.noise)
    if color is None:
        return _empty_detection(background, count)
    mask = project_mask(difference, color.direction)
    support = locate_object(mask, scale)
    windowed = mask * support.window
    areas, centroids = _measure_frames(windowed)
    has_object = support.has_object & (areas >= MIN_OBJECT_AREA * scale**2)
    centroids[~has_object] = np.nan
    if not has_object.any():
        return _empty_detection(background, count)
    area = float(np.median(areas[has_object]))
    fit = fit_shape(windowed, centroids, has_object, area, scale)
    motion = _fit_motion(centroids, has_object)
    direction, speed, motion_speed = _classify_motion(motion.velocity, world)
    size_threshold = np.sqrt(world.radius(Size.SMALL) * world.radius(Size.LARGE))
    attributes = PromptAttributes(
        shape=fit.shape,
        color=color.color,
        size=Size.SMALL if fit.radius < size_threshold else Size.LARGE,
        direction=direction,
        speed=speed,
        background=background.background,
    )
    return Detection(
        attributes=attributes,
        background_rgb=_rgb(background.rgb),
        object_rgb=_rgb(color.rgb),
        object_radius=fit.radius / scale,
        object_area=area / scale**2,
        velocity=(float(motion.velocity[0] / scale), float(motion.velocity[1] / scale)),
        motion_speed=motion_speed / scale,
        blur=fit.blur / scale,
        sharpness=1.0 / (1.0 + fit.blur / scale),
        noise=background.noise,
        jitter=motion.jitter / scale,
        flicker=background.flicker,
        shape_error=fit.error,
        object_count=int(np.round(np.median(support.counts))),
        is_in_frame=bool(has_object.all()) and not _touches_edge(support),
        color_consistency=_color_consistency(color),
        size_consistency=_size_consistency(np.where(has_object, areas, 0.0)),
        foreground_fraction=float(support.support.mean()),
        centroids=centroids,
    )


def detect_batch(
    clips: Sequence[np.ndarray] | np.ndarray, config: WorldConfig | None = None
) -> list[Detection]:
    """`detect` on each clip of a sequence or of an (N, F, H, W, 3) array."""
    if isinstance(clips, np.ndarray) and clips.ndim != 5:
        raise ValueError(f"detect_batch needs clips shaped (N, F, H, W, 3), got {clips.shape}")
    return [detect(clip, config) for clip in clips]


def _validate(frames: np.ndarray) -> None:
    if not isinstance(frames, np.ndarray):
        raise ValueError(f"detect needs a numpy array, got {type(frames).__name__}")
    if frames.dtype != np.uint8:
        raise ValueError(f"detect needs uint8 pixels (0..255), got dtype {frames.dtype}")
    if frames.ndim != 4 or frames.shape[3] != 3:
        raise ValueError(f"detect needs a clip shaped (F, H, W, 3), got {frames.shape}")
    if frames.shape[0] < 1 or min(frames.shape[1:3]) < 16:
        raise ValueError(f"detect needs at least 1 frame of at least 16x16, got {frames.shape}")


def _measure_frames(windowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Object area (F,) and centroid (F, 2) as (x, y) of the windowed mask in each frame."""
    height, width = windowed.shape[1:]
    areas = windowed.sum(axis=(1, 2))
    safe = np.where(areas > 0, areas, 1.0)
    xs = np.arange(width, dtype=np.float32) + 0.5
    ys = np.arange(height, dtype=np.float32) + 0.5
    cx = (windowed.sum(axis=1) @ xs) / safe
    cy = (windowed.sum(axis=2) @ ys) / safe
    return areas.astype(np.float64), np.stack([cx, cy], axis=1).astype(np.float64)


def _fit_motion(centroids: np.ndarray, has_object: np.ndarray) -> Motion:
    """Least-squares constant velocity of the centroids of frames with an object."""
    times = np.flatnonzero(has_object).astype(np.float64)
    if len(times) < 2:
        return Motion(velocity=np.zeros(2), jitter=0.0)
    points = centroids[has_object]
    centred_times = times - times.mean()
    velocity = centred_times @ (points - points.mean(axis=0)) / (centred_times**2).sum()
    residual = points - points.mean(axis=0) - centred_times[:, None] * velocity[None, :]
    dof = max(len(times) - 2, 1)
    jitter = float(np.sqrt((residual**2).sum() / (2 * dof))) if len(times) > 2 else 0.0
    return Motion(velocity=velocity, jitter=jitter)


def _classify_motion(
    velocity: np.ndarray, world: WorldConfig
) -> tuple[Direction | None, Speed | None, float]:
    """Direction and speed class of `velocity` (pixels per frame), and the speed along it."""
    axis = int(np.argmax(np.abs(velocity)))
    along = float(abs(velocity[axis]))
    slow, fast = world.speed_px_per_frame(Speed.SLOW), world.speed_px_per_frame(Speed.FAST)
    if along < STATIC_FRACTION * slow:
        return None, None, along
    if axis == 0:
        direction = Direction.RIGHT if velocity[0] > 0 else Direction.LEFT
    else:
        direction = Direction.DOWN if velocity[1] > 0 else Direction.UP
    return direction, Speed.SLOW if along < np.sqrt(slow * fast) else Speed.FAST, along


def _touches_edge(support: ObjectSupport) -> bool:
    """Whether the smoothed mask reaches the touch level anywhere on the frame border."""
    smoothed = support.smoothed
    edges = (smoothed[:, 0, :], smoothed[:, -1, :], smoothed[:, :, 0], smoothed[:, :, -1])
    return any(bool((edge > TOUCH_THRESHOLD).any()) for edge in edges)


def _color_consistency(color: ObjectColor) -> float:
    return float((color.per_frame == OBJECT_COLORS.index(color.color)).mean())


def _size_consistency(areas: np.ndarray) -> float:
    mean = float(areas.mean())
    if mean <= 0:
        return 0.0
    return float(np.clip(1.0 - areas.std() / mean, 0.0, 1.0))


def _rgb(values: np.ndarray) -> tuple[float, float, float]:
    return (float(values[0]), float(values[1]), float(values[2]))


def _empty_detection(background: BackgroundEstimate, frames: int) -> Detection:
    """The detection of a clip in which no object was found."""
    return Detection(
        attributes=PromptAttributes(background=background.background),
        background_rgb=_rgb(background.rgb),
        object_rgb=None,
        object_radius=None,
        object_area=0.0,
        velocity=(0.0, 0.0),
        motion_speed=0.0,
        blur=0.0,
        sharpness=0.0,
        noise=background.noise,
        jitter=0.0,
        flicker=background.flicker,
        shape_error=1.0,
        object_count=0,
        is_in_frame=False,
        color_consistency=0.0,
        size_consistency=0.0,
        foreground_fraction=0.0,
        centroids=np.full((frames, 2), np.nan),
    )

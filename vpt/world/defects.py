"""Defects that make part of the shapes world look like messy pretraining data.

A defective clip carries one or two of: Gaussian blur, pixel noise, position jitter (applied at
render time: the object is drawn at jittered centres), per-frame brightness flicker, and a
caption that describes one attribute wrongly. `Defects` records the level of each (0 = absent).
Blur and jitter are in reference pixels (a 32-pixel frame) and scale with the frame; noise is a
standard deviation on the 0..255 scale; flicker is the amplitude of the per-frame gain.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
from scipy import ndimage

from vpt.world.vocabulary import (
    ATTRIBUTE_TYPES,
    AttributeName,
    Attributes,
    choose,
)


class DefectKind(StrEnum):
    """One kind of defect."""

    BLUR = "blur"
    NOISE = "noise"
    JITTER = "jitter"
    FLICKER = "flicker"
    CAPTION_MISMATCH = "caption_mismatch"


@dataclass(frozen=True)
class DefectConfig:
    """Ranges the defect levels are drawn from (uniformly) and how many a defective clip gets."""

    blur_sigma: tuple[float, float] = (0.6, 1.5)
    """Gaussian blur standard deviation, in reference pixels (scaled with the frame)."""
    noise_std: tuple[float, float] = (6.0, 25.0)
    """Standard deviation of additive Gaussian pixel noise, on the 0..255 scale."""
    jitter_std: tuple[float, float] = (0.6, 1.5)
    """Standard deviation of the per-frame offset of the object, in reference pixels."""
    flicker_amplitude: tuple[float, float] = (0.08, 0.25)
    """Amplitude A of the per-frame brightness gain 1 + A * u (see `flicker_pattern`)."""
    max_defects: int = 2
    """A defective clip gets between 1 and this many distinct defects."""
    kinds: tuple[DefectKind, ...] = tuple(DefectKind)
    """The defect kinds that can be drawn."""

    def __post_init__(self) -> None:
        for name in ("blur_sigma", "noise_std", "jitter_std", "flicker_amplitude"):
            low, high = getattr(self, name)
            if not 0.0 < low <= high:
                raise ValueError(
                    f"DefectConfig.{name} must satisfy 0 < low <= high, got {(low, high)}"
                )
        object.__setattr__(self, "kinds", tuple(DefectKind(k) for k in self.kinds))
        if not self.kinds:
            raise ValueError("DefectConfig.kinds is empty; list at least one DefectKind")
        if not 1 <= self.max_defects <= len(self.kinds):
            raise ValueError(
                f"DefectConfig.max_defects must be in 1..{len(self.kinds)}, got {self.max_defects}"
            )


@dataclass(frozen=True)
class Defects:
    """The defects one clip carries; every level is 0 (or None) when absent."""

    blur: float = 0.0
    """Gaussian blur sigma, reference pixels."""
    noise: float = 0.0
    """Pixel noise standard deviation, 0..255 scale."""
    jitter: float = 0.0
    """Per-frame position jitter standard deviation, reference pixels."""
    flicker: float = 0.0
    """Per-frame brightness gain amplitude."""
    caption_mismatch: AttributeName | None = None
    """The attribute the caption describes wrongly, if any."""
    flicker_gains: tuple[float, ...] = field(default=(), compare=False, repr=False)
    """The per-frame gains actually applied (empty without flicker)."""

    @property
    def kinds(self) -> tuple[DefectKind, ...]:
        """The defects present, in `DefectKind` order."""
        present = {
            DefectKind.BLUR: self.blur > 0,
            DefectKind.NOISE: self.noise > 0,
            DefectKind.JITTER: self.jitter > 0,
            DefectKind.FLICKER: self.flicker > 0,
            DefectKind.CAPTION_MISMATCH: self.caption_mismatch is not None,
        }
        return tuple(kind for kind, is_present in present.items() if is_present)

    @property
    def is_clean(self) -> bool:
        """Whether the clip carries no defect at all."""
        return not self.kinds

    def level(self, kind: DefectKind) -> float:
        """The level of `kind` (1.0 for a caption mismatch, 0.0 when absent)."""
        if kind is DefectKind.CAPTION_MISMATCH:
            return float(self.caption_mismatch is not None)
        return float(getattr(self, kind.value))


def sample_defects(
    rng: np.random.Generator,
    config: DefectConfig,
    mentioned: tuple[AttributeName, ...],
) -> Defects:
    """Draw 1..max_defects distinct defects and their levels.

    `mentioned` are the attributes the clip's caption states; a caption mismatch picks one of
    them (and is not drawn when the caption states nothing).
    """
    kinds = [k for k in config.kinds if k is not DefectKind.CAPTION_MISMATCH or mentioned]
    count = min(int(rng.integers(1, config.max_defects + 1)), len(kinds))
    chosen = {kinds[i] for i in rng.choice(len(kinds), size=count, replace=False)}

    def draw(kind: DefectKind, bounds: tuple[float, float]) -> float:
        return float(rng.uniform(*bounds)) if kind in chosen else 0.0

    return Defects(
        blur=draw(DefectKind.BLUR, config.blur_sigma),
        noise=draw(DefectKind.NOISE, config.noise_std),
        jitter=draw(DefectKind.JITTER, config.jitter_std),
        flicker=draw(DefectKind.FLICKER, config.flicker_amplitude),
        caption_mismatch=(
            choose(rng, mentioned) if DefectKind.CAPTION_MISMATCH in chosen else None
        ),
    )


def misdescribe(
    attributes: Attributes, name: AttributeName, rng: np.random.Generator
) -> Attributes:
    """`attributes` with attribute `name` replaced by a different value that is still valid."""
    current = attributes.get(name)
    for value in rng.permutation(list(ATTRIBUTE_TYPES[name])):
        if value == current:
            continue
        try:
            return dataclasses.replace(attributes, **{name.value: value})
        except ValueError:  # e.g. a white object named on a white background
            continue
    raise ValueError(f"no valid alternative {name.value} for {attributes}")


def apply_image_defects(
    frames: np.ndarray, defects: Defects, rng: np.random.Generator, scale: float
) -> tuple[np.ndarray, Defects]:
    """Blur, then flicker, then add noise to uint8 `frames` (F, H, W, 3).

    `scale` converts reference pixels to pixels of this frame size. Returns the defective uint8
    frames and `defects` with the flicker gains that were applied.
    """
    if defects.blur == 0 and defects.flicker == 0 and defects.noise == 0:
        return frames, defects
    video = frames.astype(np.float32)
    if defects.blur > 0:
        sigma = defects.blur * scale
        video = ndimage.gaussian_filter(video, sigma=(0, sigma, sigma, 0), mode="nearest")
    gains: tuple[float, ...] = ()
    if defects.flicker > 0:
        gain = 1.0 + defects.flicker * flicker_pattern(len(frames), rng)
        video = video * gain.astype(np.float32)[:, None, None, None]
        gains = tuple(float(g) for g in gain)
    if defects.noise > 0:
        video = video + rng.normal(0.0, defects.noise, size=video.shape).astype(np.float32)
    result = np.clip(np.rint(video), 0, 255).astype(np.uint8)
    return result, dataclasses.replace(defects, flicker_gains=gains)


def flicker_pattern(frames: int, rng: np.random.Generator) -> np.ndarray:
    """Per-frame brightness pattern u (frames,): zero mean, the spread of uniform [-1, 1] noise.

    Draws are uniform in [-1, 1], then standardised to mean 0 and std 1/sqrt(3) (that of the
    uniform distribution), so a clip's realised flicker matches its recorded amplitude. A single
    frame cannot flicker and gets 0.
    """
    if frames < 2:
        return np.zeros(frames)
    draws = rng.uniform(-1.0, 1.0, size=frames)
    centred = draws - draws.mean()
    return centred / max(float(centred.std()), 1e-9) / np.sqrt(3.0)


def jitter_offsets(frames: int, std: float, rng: np.random.Generator) -> np.ndarray:
    """Per-frame (dx, dy) offsets (frames, 2) that shake an object around its straight path.

    Gaussian draws with their mean and linear trend removed per axis (jitter shakes the object
    without changing its path), rescaled so their per-axis residual standard deviation (with
    the two fitted degrees of freedom per axis) is exactly `std`. Clips shorter than 3 frames
    have no room for jitter and get zeros.
    """
    if frames < 3 or std <= 0:
        return np.zeros((frames, 2))
    draws = rng.normal(size=(frames, 2))
    times = np.arange(frames) - (frames - 1) / 2.0
    slope = times @ draws / (times**2).sum()
    residual = draws - draws.mean(axis=0) - times[:, None] * slope[None, :]
    spread = np.sqrt((residual**2).sum() / (2 * (frames - 2)))
    return np.asarray(residual * (std / max(float(spread), 1e-9)))

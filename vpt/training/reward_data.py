"""Training and held-out data of the learned rewards, with exact labels from the shapes world.

Each example is a world render with known attributes and defect levels:
- the world's image and motion defects (blur, noise, jitter, flicker; `vpt.world.defects`),
  drawn for `defect_fraction` of the clips, at the world's levels;
- missing frames (object persistence): the object is absent from 1..`max_missing_frames` frames,
  scattered or in one run, for `missing_fraction` of the clips. The world has no such defect;
  it is drawn here, before the image defects, so noise and flicker cover the empty frames too.

Every example is a pure function of (seed, stream, index), so a training step's batch is a pure
function of the step and a resumed run continues bit-exactly. Training draws only attribute
combinations outside the world's held-out split; evaluation draws only held-out ones.

Captions for text alignment: a positive caption states what the clip shows (short or detailed
register); a hard negative states the same attributes with one of them changed (the world's
caption-mismatch defect).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vpt.world.captions import CaptionRegister, caption_in_register, sample_short_mentions
from vpt.world.defects import Defects, apply_image_defects, misdescribe, sample_defects
from vpt.world.render import WorldConfig, composite, render_clip
from vpt.world.splits import is_held_out
from vpt.world.vocabulary import (
    BACKGROUND_RGB,
    OBJECT_RGB,
    AttributeName,
    Attributes,
    PromptAttributes,
    choose,
)

VISUAL_LEVELS = ("blur", "noise")
"""Defect levels the visual-quality reward regresses."""
MOTION_LEVELS = ("jitter", "flicker", "missing")
"""Defect levels the motion-quality reward regresses (missing = fraction of frames)."""


@dataclass(frozen=True)
class RewardDataConfig:
    """How reward training and evaluation clips are drawn."""

    world: WorldConfig = field(default_factory=WorldConfig)
    """Geometry and defect level ranges (the world's `defect_fraction` is not used)."""
    seed: int = 0
    """Seed of every clip and caption."""
    defect_fraction: float = 0.6
    """Fraction of clips carrying 1..max_defects of blur, noise, jitter, flicker."""
    missing_fraction: float = 0.25
    """Fraction of clips whose object is missing from some frames."""
    max_missing_frames: int = 6
    """Most frames a missing object is absent from."""
    text_pool: int = 2400
    """Captioned attribute draws (each with a positive and a hard-negative caption)."""
    detailed_fraction: float = 0.5
    """Fraction of text-pool captions in the detailed register (the rest are short)."""

    def __post_init__(self) -> None:
        for name in ("defect_fraction", "missing_fraction", "detailed_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if not 1 <= self.max_missing_frames < self.world.frames:
            raise ValueError(
                f"max_missing_frames must be in 1..{self.world.frames - 1}, "
                f"got {self.max_missing_frames}"
            )
        if self.text_pool < 2:
            raise ValueError(f"text_pool must be >= 2, got {self.text_pool}")

    def level_scales(self, names: tuple[str, ...]) -> tuple[float, ...]:
        """The raw level of each named defect that counts as 1: the world's strongest."""
        defects = self.world.defects
        strongest = {
            "blur": defects.blur_sigma[1],
            "noise": defects.noise_std[1],
            "jitter": defects.jitter_std[1],
            "flicker": defects.flicker_amplitude[1],
            "missing": self.max_missing_frames / self.world.frames,
        }
        return tuple(float(strongest[name]) for name in names)


@dataclass(frozen=True)
class RewardClip:
    """One labelled clip."""

    frames: np.ndarray
    """uint8 (F, H, W, 3)."""
    attributes: Attributes
    """What the clip shows."""
    defects: Defects
    """World defects it carries (no caption mismatch)."""
    missing: float
    """Fraction of frames from which the object is missing."""

    def level(self, name: str) -> float:
        """Raw level of defect `name` (`missing` or a `Defects` field)."""
        return self.missing if name == "missing" else float(getattr(self.defects, name))


@dataclass(frozen=True)
class CaptionPair:
    """A positive and a hard-negative caption of one attribute draw."""

    attributes: Attributes
    """The attributes the positive caption describes."""
    positive: str
    """States (some of) `attributes` correctly."""
    positive_stated: PromptAttributes
    """What the positive caption states."""
    negative: str
    """The same statement with one attribute changed."""
    negative_stated: PromptAttributes
    """What the negative caption states."""


def sample_attributes(rng: np.random.Generator, held_out: bool) -> Attributes:
    """Attributes drawn uniformly among the held-out (or the training) combinations."""
    while True:
        attributes = Attributes.sample(rng)
        if is_held_out(attributes) == held_out:
            return attributes


def render_reward_clip(
    attributes: Attributes, rng: np.random.Generator, config: RewardDataConfig
) -> RewardClip:
    """Render `attributes` with defects and missing frames drawn from `rng`."""
    defect_rng, render_rng, missing_rng = rng.spawn(3)
    world = config.world
    defects = Defects()
    if defect_rng.random() < config.defect_fraction:
        defects = sample_defects(defect_rng, world.defects, mentioned=())
    rendered = render_clip(attributes, render_rng, world, jitter_std=defects.jitter)
    frames = rendered.frames
    missing = 0
    if missing_rng.random() < config.missing_fraction:
        missing = int(missing_rng.integers(1, config.max_missing_frames + 1))
        if missing_rng.random() < 0.5:
            start = int(missing_rng.integers(0, world.frames - missing + 1))
            absent = np.arange(start, start + missing)
        else:
            absent = missing_rng.choice(world.frames, size=missing, replace=False)
        coverage = rendered.coverage.copy()
        coverage[absent] = 0.0
        frames = composite(
            coverage, OBJECT_RGB[attributes.color], BACKGROUND_RGB[attributes.background]
        )
    frames, defects = apply_image_defects(frames, defects, render_rng, world.scale)
    return RewardClip(frames, attributes, defects, missing / world.frames)


def draw_clip(config: RewardDataConfig, stream: int, index: int, held_out: bool) -> RewardClip:
    """Clip `index` of stream `stream`: attributes and render drawn from (seed, stream, index)."""
    attribute_rng, clip_rng = np.random.default_rng([config.seed, stream, index]).spawn(2)
    return render_reward_clip(sample_attributes(attribute_rng, held_out), clip_rng, config)


def draw_caption_pair(
    config: RewardDataConfig, stream: int, index: int, held_out: bool
) -> CaptionPair:
    """Caption pair `index` of stream `stream`, drawn from (seed, stream, index)."""
    rng = np.random.default_rng([config.seed, stream, index])
    attributes = sample_attributes(rng, held_out)
    if rng.random() < config.detailed_fraction:
        register, mentions = CaptionRegister.DETAILED, tuple(AttributeName)
    else:
        register, mentions = CaptionRegister.SHORT, sample_short_mentions(rng)
    positive = caption_in_register(attributes, register, rng, mentions)
    changed = misdescribe(attributes, choose(rng, mentions), rng)
    negative = caption_in_register(changed, register, rng, mentions)
    return CaptionPair(
        attributes, positive.text, positive.attributes, negative.text, negative.attributes
    )


def stack_frames(clips: list[RewardClip]) -> np.ndarray:
    """uint8 (N, F, H, W, 3) of `clips`."""
    return np.stack([clip.frames for clip in clips])

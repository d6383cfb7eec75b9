"""The shapes world as a dataset: captioned clips, deterministic from (seed, index).

Each clip draws its attributes, whether it is defective (and how), its caption and its render
from independent random streams spawned from `np.random.default_rng([seed, index])`, so a clip
does not depend on which other clips were drawn, and a curated world (no defects, detailed
captions) shows the same objects as the raw world with the same seed.

Clean clips mostly get detailed captions with quality words and defective clips mostly get short
ones, so a generator trained on the mix learns that quality words go with clean video.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from vpt.world.captions import (
    Caption,
    CaptionRegister,
    caption_in_register,
    sample_short_mentions,
)
from vpt.world.defects import (
    Defects,
    apply_image_defects,
    misdescribe,
    sample_defects,
)
from vpt.world.render import WorldConfig, render_clip
from vpt.world.vocabulary import AttributeName, Attributes, PromptAttributes


@dataclass(frozen=True)
class Clip:
    """One captioned clip of the shapes world."""

    frames: np.ndarray
    """RGB uint8 video, (F, H, W, 3)."""
    caption: str
    """The caption, as a data set would carry it."""
    attributes: Attributes
    """What the clip really shows."""
    caption_attributes: PromptAttributes
    """What the caption states; differs from `attributes` when the caption is mismatched."""
    defects: Defects
    """The defects this clip carries."""
    register: CaptionRegister
    """The caption's register."""
    centres: np.ndarray
    """Object centre (x, y) in each frame, pixels, (F, 2)."""
    seed: int
    """World seed."""
    index: int
    """Index of the clip in its world."""


@dataclass(frozen=True)
class ClipBatch:
    """Several clips stacked for training or evaluation."""

    frames: np.ndarray
    """RGB uint8 videos, (N, F, H, W, 3)."""
    captions: tuple[str, ...]
    """One caption per clip."""
    clips: tuple[Clip, ...]
    """The clips themselves (attributes, defects, ...)."""


def sample_clip(config: WorldConfig, seed: int, index: int) -> Clip:
    """Clip `index` of the world with `seed`; the same arguments always give the same clip."""
    if index < 0:
        raise ValueError(f"clip index must be >= 0, got {index}")
    root = np.random.default_rng([seed, index])
    attribute_rng, defect_rng, caption_rng, render_rng = root.spawn(4)
    attributes = Attributes.sample(attribute_rng)
    is_defective = defect_rng.random() < config.defect_fraction
    register = _choose_register(is_defective, defect_rng, config)
    mentions = (
        tuple(AttributeName)
        if register is CaptionRegister.DETAILED
        else sample_short_mentions(caption_rng)
    )
    defects = sample_defects(defect_rng, config.defects, mentions) if is_defective else Defects()
    described = attributes
    if defects.caption_mismatch is not None:
        described = misdescribe(attributes, defects.caption_mismatch, defect_rng)
    caption: Caption = caption_in_register(described, register, caption_rng, mentions)
    rendered = render_clip(attributes, render_rng, config, jitter_std=defects.jitter)
    frames, defects = apply_image_defects(rendered.frames, defects, render_rng, config.scale)
    return Clip(
        frames=frames,
        caption=caption.text,
        attributes=attributes,
        caption_attributes=caption.attributes,
        defects=defects,
        register=register,
        centres=rendered.centres,
        seed=seed,
        index=index,
    )


def render_clean(attributes: Attributes, seed: int, config: WorldConfig) -> np.ndarray:
    """A clean render (F, H, W, 3) uint8 of `attributes`, e.g. as a ground-truth reference."""
    return render_clip(attributes, np.random.default_rng(seed), config).frames


class ShapesWorld:
    """An unbounded, indexable stream of clips of the shapes world."""

    def __init__(self, config: WorldConfig | None = None, seed: int = 0, clean_only: bool = False):
        """`clean_only` gives the curated world (no defects, detailed captions) for SFT."""
        base = config if config is not None else WorldConfig()
        self.config = base.curated() if clean_only else base
        self.seed = seed

    def __getitem__(self, index: int) -> Clip:
        return sample_clip(self.config, self.seed, index)

    def batch(self, indices: Iterable[int]) -> ClipBatch:
        """The clips at `indices`, with frames stacked to (N, F, H, W, 3)."""
        clips = tuple(self[int(i)] for i in indices)
        if not clips:
            raise ValueError("batch() needs at least one index")
        frames = np.stack([clip.frames for clip in clips])
        return ClipBatch(frames=frames, captions=tuple(c.caption for c in clips), clips=clips)

    def clips(self, start: int = 0, stop: int | None = None) -> Iterator[Clip]:
        """Clips start, start + 1, ... up to (not including) `stop`, or forever when None."""
        index = start
        while stop is None or index < stop:
            yield self[index]
            index += 1

    def __repr__(self) -> str:
        return f"ShapesWorld(seed={self.seed}, config={self.config})"


def _choose_register(
    is_defective: bool, rng: np.random.Generator, config: WorldConfig
) -> CaptionRegister:
    if is_defective:
        is_short = rng.random() < config.defective_short_fraction
    else:
        is_short = rng.random() >= config.clean_detailed_fraction
    return CaptionRegister.SHORT if is_short else CaptionRegister.DETAILED

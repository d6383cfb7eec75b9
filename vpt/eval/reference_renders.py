"""Reference videos rendered by the shapes world: what a prompt asks for, clean or damaged.

`render_reference` turns (prompt attributes, seed) into a clean render, or into the same render
with image defects applied, deterministically. The clean render of a complete description
equals `vpt.world.render_clean(attributes, seed, config)`, and a defective render shows the
same object on the same path (the start position is drawn before any jitter), so clean and
defective references differ only by their defects. `sample_raw_defects` draws the defect mix of
the world's raw (uncurated) data per (prompt, seed). They serve as the world-backed evaluation
systems (`vpt.eval.systems`) and as the judge's calibration set (`vpt.eval.judge`).
"""

from __future__ import annotations

import hashlib
from dataclasses import replace

import numpy as np

from vpt.world.defects import (
    DefectConfig,
    DefectKind,
    Defects,
    apply_image_defects,
    sample_defects,
)
from vpt.world.render import WorldConfig, render_clip
from vpt.world.vocabulary import (
    ATTRIBUTE_TYPES,
    AttributeName,
    Attributes,
    PromptAttributes,
    choose,
    valid_color_background_pairs,
)

IMAGE_DEFECT_KINDS: tuple[DefectKind, ...] = (
    DefectKind.BLUR,
    DefectKind.NOISE,
    DefectKind.JITTER,
    DefectKind.FLICKER,
)
"""The defects that change pixels (a caption mismatch does not)."""

ATTRIBUTE_STREAM = 1
"""Second word of the RNG key that completes open attributes."""
DEFECT_STREAM = 2
"""Second word of the RNG key `[seed, DEFECT_STREAM]` that draws flicker gains and noise."""
RAW_DEFECT_STREAM = 3
"""Second word of the RNG key that decides a raw-world render's defects."""


def strongest_defects(
    config: DefectConfig | None = None, kinds: tuple[DefectKind, ...] = IMAGE_DEFECT_KINDS
) -> Defects:
    """`Defects` with each of `kinds` at the top of its range in `config` (others absent)."""
    ranges = config or DefectConfig()
    for kind in kinds:
        if kind not in IMAGE_DEFECT_KINDS:
            raise ValueError(
                f"{kind} does not change pixels; choose from "
                f"{', '.join(k.value for k in IMAGE_DEFECT_KINDS)}"
            )
    return Defects(
        blur=ranges.blur_sigma[1] if DefectKind.BLUR in kinds else 0.0,
        noise=ranges.noise_std[1] if DefectKind.NOISE in kinds else 0.0,
        jitter=ranges.jitter_std[1] if DefectKind.JITTER in kinds else 0.0,
        flicker=ranges.flicker_amplitude[1] if DefectKind.FLICKER in kinds else 0.0,
    )


def sample_raw_defects(stated: PromptAttributes, seed: int, config: WorldConfig) -> Defects:
    """The image defects the raw world would give this (prompt, seed): none with probability
    1 - `config.defect_fraction`, else 1 to `max_defects` image defects at levels drawn
    uniformly from `config.defects` (as `vpt.world.sample_clip` does, minus caption mismatch).
    """
    rng = np.random.default_rng([seed, RAW_DEFECT_STREAM, _stated_key(stated)])
    if rng.random() >= config.defect_fraction:
        return Defects()
    ranges = config.defects
    kinds = tuple(k for k in ranges.kinds if k in IMAGE_DEFECT_KINDS) or IMAGE_DEFECT_KINDS
    image_only = replace(ranges, kinds=kinds, max_defects=min(ranges.max_defects, len(kinds)))
    return sample_defects(rng, image_only, mentioned=())


def complete_attributes(stated: PromptAttributes, rng: np.random.Generator) -> Attributes:
    """`stated` with every open attribute drawn uniformly over the valid completions."""
    pairs = [
        (color, background)
        for color, background in valid_color_background_pairs()
        if stated.color in (None, color) and stated.background in (None, background)
    ]
    if not pairs:
        raise ValueError(
            f"no valid scene has a {stated.color} object on a {stated.background} background; "
            "the background must differ from the object color"
        )
    color, background = choose(rng, pairs)
    values: dict[AttributeName, object] = {
        AttributeName.COLOR: color,
        AttributeName.BACKGROUND: background,
    }
    for name in (
        AttributeName.SHAPE,
        AttributeName.SIZE,
        AttributeName.DIRECTION,
        AttributeName.SPEED,
    ):
        values[name] = stated.get(name) or choose(rng, tuple(ATTRIBUTE_TYPES[name]))
    return PromptAttributes.from_values(values).to_attributes()


def render_reference(
    stated: PromptAttributes,
    seed: int,
    config: WorldConfig,
    defects: Defects | None = None,
) -> np.ndarray:
    """uint8 (F, H, W, 3): `stated` completed from `seed`, rendered, with `defects` applied.

    Open attributes are drawn from `np.random.default_rng([seed, ATTRIBUTE_STREAM, key])`
    where `key` hashes what `stated` states (so prompts sharing a seed do not share their
    completions), the start position (then any jitter) from `np.random.default_rng(seed)` as
    in `render_clean`, and the flicker gains and pixel noise from
    `np.random.default_rng([seed, DEFECT_STREAM])`.
    """
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    damage = defects or Defects()
    if damage.caption_mismatch is not None:
        raise ValueError("a reference render shows what the prompt asks for; drop caption_mismatch")
    completion_rng = np.random.default_rng([seed, ATTRIBUTE_STREAM, _stated_key(stated)])
    attributes = complete_attributes(stated, completion_rng)
    rendered = render_clip(attributes, np.random.default_rng(seed), config, damage.jitter)
    frames, _ = apply_image_defects(
        rendered.frames, damage, np.random.default_rng([seed, DEFECT_STREAM]), config.scale
    )
    return frames


def _stated_key(stated: PromptAttributes) -> int:
    """A stable 32-bit hash of the attributes `stated` states."""
    text = "|".join(str(stated.get(name) or "-") for name in AttributeName)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big")

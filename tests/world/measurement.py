"""Clips of the shapes world together with what the detector read from them."""

from __future__ import annotations

from dataclasses import dataclass

from vpt.world import Clip, Detection, WorldConfig, detect, sample_clip


@dataclass(frozen=True)
class Measured:
    """Clips and what the detector read from them."""

    clips: tuple[Clip, ...]
    detections: tuple[Detection, ...]


def measure(config: WorldConfig, seed: int, count: int) -> Measured:
    """The first `count` clips of the world (`config`, `seed`) and their detections."""
    clips = tuple(sample_clip(config, seed, index) for index in range(count))
    return Measured(clips, tuple(detect(clip.frames, config) for clip in clips))

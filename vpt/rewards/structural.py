"""The structural-constraint reward: one object, in frame, keeping its color and size.

Rule-based, from the world's analytic detector (`vpt.world.detect`); no learned part. Per video,
in [0, 1], a product of factors that are each 1 on a clean render of the world:

    structural = one_object * in_frame * color * size      (0 when no object is found at all)
        one_object = ONE_OBJECT_FACTOR ** |object_count - 1|
        in_frame   = 1 if an object is found in every frame and never touches the edge,
                     else OUT_OF_FRAME_FACTOR * (fraction of frames with an object)
        color      = fraction of frames whose object color is the clip's object color
        size       = 1 - clip((area variation - SIZE_TOLERANCE) / SIZE_SPAN, 0, 1)
                     (area variation = coefficient of variation of the per-frame object area)

It works at any frame count and size the detector reads (at least 16x16 pixels).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vpt.rewards.base import RewardInputError, check_reward_inputs
from vpt.world.detector import Detection, detect

ONE_OBJECT_FACTOR = 0.25
"""Factor per object too many (or too few)."""
OUT_OF_FRAME_FACTOR = 0.5
"""Factor of a video whose object leaves the frame, touches its edge or goes missing."""
SIZE_TOLERANCE = 0.05
"""Area variation (coefficient of variation) that still counts as a constant size."""
SIZE_SPAN = 0.2
"""Area variation beyond the tolerance at which the size factor reaches 0."""
MIN_SIDE = 16
"""Smallest frame side (pixels) the detector reads."""


@dataclass(frozen=True)
class StructuralFactors:
    """The factors of one video's structural score."""

    one_object: float
    """ONE_OBJECT_FACTOR ** |object count - 1|."""
    in_frame: float
    """1 when the object stays whole inside every frame."""
    color: float
    """Fraction of frames keeping the object's color."""
    size: float
    """1 while the object's area stays within SIZE_TOLERANCE of constant."""

    @property
    def score(self) -> float:
        """The product of the factors, in [0, 1]."""
        return self.one_object * self.in_frame * self.color * self.size


def structural_factors(detection: Detection) -> StructuralFactors:
    """The structural factors of one detected video (all 0 when no object was found)."""
    present = float(np.mean(~np.isnan(detection.centroids[:, 0])))
    if present == 0.0:
        return StructuralFactors(0.0, 0.0, 0.0, 0.0)
    variation = 1.0 - detection.size_consistency
    return StructuralFactors(
        one_object=ONE_OBJECT_FACTOR ** abs(detection.object_count - 1),
        in_frame=1.0 if detection.is_in_frame else OUT_OF_FRAME_FACTOR * present,
        color=float(detection.color_consistency),
        size=1.0 - float(np.clip((variation - SIZE_TOLERANCE) / SIZE_SPAN, 0.0, 1.0)),
    )


class StructuralReward:
    """`Reward`: the structural score of each video (prompts are not used)."""

    name = "structural"

    def score(self, videos_BFHWC: np.ndarray, prompts: Sequence[str]) -> np.ndarray:
        """float32 `(B,)` structural scores in [0, 1]."""
        check_reward_inputs(videos_BFHWC, prompts)
        if videos_BFHWC.shape[1] < 1 or min(videos_BFHWC.shape[2:4]) < MIN_SIDE:
            raise RewardInputError(
                f"reward 'structural' needs videos of at least 1 frame of {MIN_SIDE}x{MIN_SIDE} "
                f"pixels, got frames x height x width = {tuple(videos_BFHWC.shape[1:4])}"
            )
        scores = [structural_factors(detect(video)).score for video in videos_BFHWC]
        return np.asarray(scores, dtype=np.float32).reshape(len(prompts))

"""A tiny real reward with a known answer: the mean brightness of the red channel, in [0, 1].

It follows the `vpt.rewards.Reward` protocol. Reward sets only accept the names vpt knows, so it
stands in for the learned visual-quality reward under that name.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vpt.rewards import check_reward_inputs


class RedBrightness:
    """Mean red value of every pixel of a video / 255."""

    name = "visual_quality"

    def score(self, videos_BFHWC: np.ndarray, prompts: Sequence[str]) -> np.ndarray:
        check_reward_inputs(videos_BFHWC, prompts)
        red = videos_BFHWC[..., 0].reshape(len(videos_BFHWC), -1)
        return (red.mean(axis=1) / 255).astype(np.float32)

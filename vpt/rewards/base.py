"""The one protocol every reward follows, and the one way rewards are combined.

A reward reads a batch of videos and their prompts and returns one score per video (higher is
better). Learned rewards (text alignment, visual quality, motion quality) and the rule-based
structural reward implement it in-process; a remote scorer (Triton) is an adapter behind the
same protocol.

Combination follows DanceGRPO's advantage-level aggregation (Xue et al., 2025, Sec. 3.3): each
reward is normalised within its group of rollouts of one prompt, then the normalised rewards are
summed with configured weights. Weighting raw scores instead would let the reward with the
largest spread dominate.

Shapes: ``videos_BFHWC`` uint8 (batch, frames, height, width, 3); scores ``(B,)`` float32.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Reward(Protocol):
    """Videos and prompts in, one score per video out."""

    name: str
    """Stable name, used as the key in configs, metrics and events."""

    def score(self, videos_BFHWC: np.ndarray, prompts: Sequence[str]) -> np.ndarray:
        """Return a float32 array of shape (B,) with one score per video, higher is better."""
        ...


class RewardInputError(ValueError):
    """A reward was called with videos or prompts it cannot score; the message says why."""


def check_reward_inputs(videos_BFHWC: np.ndarray, prompts: Sequence[str]) -> None:
    """Raise `RewardInputError` unless videos are uint8 (B, F, H, W, 3) with B prompts."""
    if not isinstance(videos_BFHWC, np.ndarray):
        raise RewardInputError(f"videos must be a numpy array, got {type(videos_BFHWC).__name__}")
    if videos_BFHWC.dtype != np.uint8:
        raise RewardInputError(f"videos must be uint8, got {videos_BFHWC.dtype}")
    if videos_BFHWC.ndim != 5 or videos_BFHWC.shape[-1] != 3:
        raise RewardInputError(
            f"videos must have shape (batch, frames, height, width, 3), got {videos_BFHWC.shape}"
        )
    if isinstance(prompts, str):
        raise RewardInputError("prompts must be a sequence of strings, got one string")
    if len(prompts) != videos_BFHWC.shape[0]:
        raise RewardInputError(
            f"got {videos_BFHWC.shape[0]} videos but {len(prompts)} prompts; pass one per video"
        )


def normalise_within_groups(
    scores_N: np.ndarray, group_ids_N: np.ndarray, *, std_scope: str = "group", eps: float = 1e-6
) -> np.ndarray:
    """(score - group mean) / std, with std over the group (`"group"`) or the batch (`"global"`).

    A group whose scores do not vary gets all zeros (it carries no preference).
    """
    if std_scope not in ("group", "global"):
        raise ValueError(f"std_scope must be 'group' or 'global', got {std_scope!r}")
    scores_N = np.asarray(scores_N, dtype=np.float64)
    group_ids_N = np.asarray(group_ids_N)
    if scores_N.shape != group_ids_N.shape or scores_N.ndim != 1:
        raise ValueError(
            f"scores and group ids must be 1-D of one length, got {scores_N.shape} and "
            f"{group_ids_N.shape}"
        )
    centred_N = np.zeros_like(scores_N)
    group_std_N = np.zeros_like(scores_N)
    for group in np.unique(group_ids_N):
        members = group_ids_N == group
        centred_N[members] = scores_N[members] - scores_N[members].mean()
        group_std_N[members] = scores_N[members].std()
    std_N = group_std_N if std_scope == "group" else np.full_like(scores_N, centred_N.std())
    normalised_N = np.where(std_N > eps, centred_N / np.maximum(std_N, eps), 0.0)
    normalised_N[group_std_N <= eps] = 0.0
    return normalised_N


def combine_rewards(
    scores: Mapping[str, np.ndarray],
    group_ids_N: np.ndarray,
    weights: Mapping[str, float],
    *,
    std_scope: str = "group",
) -> np.ndarray:
    """Weighted sum of the per-reward group-normalised scores (advantage-level aggregation).

    `scores` maps reward name -> (N,) scores; every weighted name must be present.
    """
    missing = sorted(set(weights) - set(scores))
    if missing:
        raise ValueError(f"weights name rewards that were not scored: {missing}")
    total_N = np.zeros(len(group_ids_N), dtype=np.float64)
    for name, weight in weights.items():
        total_N += weight * normalise_within_groups(scores[name], group_ids_N, std_scope=std_scope)
    return total_N

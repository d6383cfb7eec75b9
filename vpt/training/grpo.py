"""GRPO for flow-matching video diffusion: advantages, temporal gradient rectification and the
clipped policy loss (stage 2 of arXiv 2604.25427; the exact formulas are those of the same
authors' Flash-GRPO, arXiv 2605.15980, `scripts/train_wanx2_1_flash.py`).

For rollout i of a group (one prompt), with reward scores R_m,i for each reward m:

    advantage   A_i = clip( sum_m w_m (R_m,i - mean_group R_m) / std R_m, -a, a )
                (DanceGRPO's advantage-level aggregation, `vpt.rewards.combine_rewards`; std over
                the group or over the whole global batch; a group whose rewards do not vary at
                all carries no preference and is dropped)
    ratio       r_i = exp(log p_theta(x_{k+1} | x_k) - log p_old)
                (element-MEAN Gaussian log-prob of the stored SDE step, `vpt.sampling`)
    TGR weight  w_i = (1 / c_i) / mean_j (1 / c_j),   c = |d mean / d v| / std   (constant)
    loss        L = (1 / N) sum_i w_i max(-A_i r_i, -A_i clip(r_i, 1 - eps, 1 + eps))
                    + beta KL_i,   KL_i = mean_elements (mean_theta - mean_ref)^2 / (2 std^2)

c(sigma) is the factor by which d log p / d v scales with the timestep (Flash-GRPO's "Factor(t)",
eq. of its section 3.3); dividing it out gives prompt groups that explored at different
timesteps comparable gradient magnitudes. Within a group every rollout shares the timestep, so
TGR only re-balances groups against each other.

Shape legend: N rollouts (samples) in the batch; per-sample tensors are (N,).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
import torch
from torch import Tensor

from vpt.rewards import combine_rewards

StdScope = Literal["group", "global"]


@dataclass(frozen=True)
class AdvantageConfig:
    """How rewards become advantages."""

    std_scope: StdScope = "global"
    """Normalise each reward by its std over the group, or over the whole (global) batch."""
    clip: float = 5.0
    """Clamp advantages to [-clip, clip] (Flash-GRPO 5)."""

    def __post_init__(self) -> None:
        if self.std_scope not in get_args(StdScope):
            raise ValueError(
                f"AdvantageConfig.std_scope must be one of {get_args(StdScope)}, "
                f"got {self.std_scope!r}"
            )
        if not self.clip > 0:
            raise ValueError(f"AdvantageConfig.clip must be > 0, got {self.clip}")


@dataclass(frozen=True)
class PolicyLossConfig:
    """The clipped surrogate and its KL penalty."""

    clip_range: float = 1e-3
    """PPO clip epsilon on the per-element geometric-mean ratio (Flash-GRPO 1e-3)."""
    kl_weight: float = 0.0
    """beta: weight of the KL to the reference policy (0 skips the reference pass)."""

    def __post_init__(self) -> None:
        if not 0 < self.clip_range < 1:
            raise ValueError(
                f"PolicyLossConfig.clip_range must be in (0, 1), got {self.clip_range}"
            )
        if not self.kl_weight >= 0:
            raise ValueError(f"PolicyLossConfig.kl_weight must be >= 0, got {self.kl_weight}")


@dataclass(frozen=True)
class Advantages:
    """Advantages of a batch and which samples train."""

    values: np.ndarray
    """(N,) float64 advantages, clipped; 0 for dropped samples."""
    is_kept: np.ndarray
    """(N,) bool: False for samples of groups whose rewards did not vary (no preference)."""


def compute_advantages(
    scores: Mapping[str, np.ndarray],
    group_ids_N: np.ndarray,
    weights: Mapping[str, float],
    config: AdvantageConfig,
) -> Advantages:
    """Group-relative advantages by advantage-level aggregation of several rewards.

    `scores` maps a reward name to its (N,) scores; `weights` maps the names that count to their
    weight. Groups in which every weighted reward is constant are dropped.
    """
    group_ids_N = np.asarray(group_ids_N)
    if not weights:
        raise ValueError("weights must name at least one reward")
    for name, values in scores.items():
        if np.shape(values) != group_ids_N.shape:
            raise ValueError(
                f"reward {name!r} has scores of shape {np.shape(values)}, expected "
                f"{group_ids_N.shape} (one per sample)"
            )
        if not np.all(np.isfinite(values)):
            raise ValueError(f"reward {name!r} returned a non-finite score")
    combined_N = combine_rewards(scores, group_ids_N, weights, std_scope=config.std_scope)
    is_kept_N = np.zeros(group_ids_N.shape, dtype=bool)
    for group in np.unique(group_ids_N):
        members = group_ids_N == group
        spread = max(float(np.ptp(np.asarray(scores[name])[members])) for name in weights)
        is_kept_N[members] = spread > 0
    values_N = np.where(is_kept_N, np.clip(combined_N, -config.clip, config.clip), 0.0)
    return Advantages(values=values_N, is_kept=is_kept_N)


def tgr_weights(gradient_scale_N: Tensor, mean_inverse_scale: float | None = None) -> Tensor:
    """Temporal gradient rectification weights (1 / c_i) / mean(1 / c), detached.

    `gradient_scale_N` holds c = |d mean / d v| / std of each sample's SDE step. The mean of 1/c
    is over these samples (the weights then average 1), or `mean_inverse_scale` when the loss is
    averaged over a larger (global, multi-rank) batch whose mean of 1/c the caller computed.
    """
    if gradient_scale_N.ndim != 1 or gradient_scale_N.numel() == 0:
        raise ValueError(
            f"gradient_scale must be a non-empty (N,) tensor, got {tuple(gradient_scale_N.shape)}"
        )
    if not bool(torch.all(torch.isfinite(gradient_scale_N) & (gradient_scale_N > 0))):
        raise ValueError(
            "every gradient_scale must be finite and > 0 (a deterministic step has none); got "
            f"{gradient_scale_N.tolist()}"
        )
    inverse_N = 1.0 / gradient_scale_N.detach().double()
    mean = float(inverse_N.mean()) if mean_inverse_scale is None else mean_inverse_scale
    if not mean > 0:
        raise ValueError(f"mean_inverse_scale must be > 0, got {mean_inverse_scale}")
    return (inverse_N / mean).float()


@dataclass(frozen=True)
class PolicyLoss:
    """Per-sample terms of the GRPO objective (sum or average them for the loss)."""

    terms: Tensor
    """(N,) w_i max(-A r, -A clip(r)) + beta KL_i, differentiable."""
    ratio: Tensor
    """(N,) detached probability ratios."""
    is_clipped: Tensor
    """(N,) bool: the clipped branch was taken (no gradient from that sample's surrogate)."""
    kl: Tensor
    """(N,) detached KL to the reference (zeros when no reference was given)."""


def kl_to_reference(mean: Tensor, reference_mean: Tensor, std_N: Tensor) -> Tensor:
    """KL between the policy and reference Gaussians of one SDE step, element-mean: (N,).

    Both share `std`, so KL = mean over elements of (mean - reference_mean)^2 / (2 std^2).
    """
    if mean.shape != reference_mean.shape:
        raise ValueError(
            f"reference mean has shape {tuple(reference_mean.shape)}, expected {tuple(mean.shape)}"
        )
    squared_N = (mean.float() - reference_mean.float()).pow(2).flatten(1).mean(1)
    return squared_N / (2 * std_N.float() ** 2)


def clipped_policy_loss(
    log_prob_N: Tensor,
    old_log_prob_N: Tensor,
    advantages_N: Tensor,
    weights_N: Tensor,
    config: PolicyLossConfig,
    kl_N: Tensor | None = None,
) -> PolicyLoss:
    """PPO's clipped surrogate, weighted per sample, plus beta times the KL when given."""
    shapes = {tuple(t.shape) for t in (log_prob_N, old_log_prob_N, advantages_N, weights_N)}
    if len(shapes) != 1 or log_prob_N.ndim != 1:
        raise ValueError(
            "log_prob, old_log_prob, advantages and weights must all be (N,), got shapes "
            f"{[tuple(t.shape) for t in (log_prob_N, old_log_prob_N, advantages_N, weights_N)]}"
        )
    ratio_N = torch.exp(log_prob_N - old_log_prob_N.detach())
    advantages_N = advantages_N.to(ratio_N.dtype).detach()
    unclipped_N = -advantages_N * ratio_N
    clipped_N = -advantages_N * ratio_N.clamp(1 - config.clip_range, 1 + config.clip_range)
    terms_N = weights_N.to(ratio_N.dtype).detach() * torch.maximum(unclipped_N, clipped_N)
    kl_value_N = torch.zeros_like(ratio_N)
    if kl_N is not None:
        terms_N = terms_N + config.kl_weight * kl_N
        kl_value_N = kl_N.detach()
    return PolicyLoss(
        terms=terms_N,
        ratio=ratio_N.detach(),
        is_clipped=(clipped_N > unclipped_N).detach(),
        kl=kl_value_N,
    )

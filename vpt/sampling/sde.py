"""Stochastic flow-matching sampling with Gaussian log-probabilities, for GRPO.

A marginal-preserving reverse SDE of rectified flow, discretised by Euler-Maruyama: the
ODE-to-SDE update of Flow-GRPO (Liu et al., arXiv 2505.05470, section 4, "ODE-to-SDE";
`sde_step_with_logprob` in yifan123/flow_grpo), DanceGRPO (Xue et al., arXiv 2505.07818;
`flux_step` in XueZeyue/DanceGRPO) and Flash-GRPO (arXiv 2605.15980; the Wan 2.1 sampler
`wan2_1_pipeline_with_logprob` in Shredded-Pork/Flash-GRPO). They differ only in the diffusion
coefficient g(sigma).
One step from sigma to sigma_next, with delta = sigma - sigma_next > 0:

    mean     = x * (1 - g^2 delta / (2 sigma)) - v * delta * (1 + g^2 (1 - sigma) / (2 sigma))
    std      = g * sqrt(delta)
    x_next   = mean + std * eps,          eps ~ N(0, I)
    log_prob = mean over the non-batch elements of log N(x_next; mean, std^2)

(the score used is -(x + (1 - sigma) v) / sigma, the exact score of x_sigma given the velocity).
The element-wise MEAN, not the sum, is the convention of every public GRPO repository, so PPO
clip ranges (1e-5 to 1e-3) refer to a per-element geometric-mean ratio.

Noise schedules, a = `SDEConfig.noise_level`:
- "flow_grpo":  g = a * sqrt(sigma / (1 - sigma)). At sigma = 1 the denominator is undefined;
  like Flow-GRPO (which substitutes `sigmas[1]`, the first grid value below 1) the step uses
  its own sigma_next in the denominator there: g = a * sqrt(1 / (1 - sigma_next)). A step that
  starts at 1 on a grid always ends at that grid's first value below 1, so this reproduces
  Flow-GRPO exactly and keeps `sde_step` a pure function of its arguments.
- "dance_grpo": g = a (constant eta).
- "flash_grpo": g = a * sigma (Flash-GRPO uses a = sigmas[1] ~ 0.98 and sigma_min = 0).

Deterministic cases. A step that ends at sigma_next = 0 (the last step of a full trajectory)
is always the Euler step x - sigma * v, i.e. the model's clean-sample prediction, with g = 0:
Flow-GRPO never trains on it and DanceGRPO drops it (`--ignore_last`). With g = 0 (that case,
or noise_level = 0) the step is bitwise the Euler ODE step of `ode.euler_step`, its std is 0,
and its log_prob and gradient_scale are NaN (a point mass has no density; NaN makes any loss
that uses it visibly NaN rather than silently wrong). `sample_sde` refuses to record such steps.

`gradient_scale` c(sigma) = |d mean / d v| / std = delta (1 + g^2 (1 - sigma) / (2 sigma)) / std
is the time-dependent factor of d log_prob / d v that Flash-GRPO's temporal gradient
rectification divides out: its per-timestep `coe` table holds 1 / c, and the tests reproduce
that table from Wan 2.1's sigma grid.

All arithmetic runs in fp32, or fp64 when x is fp64; "fp32" below means that compute dtype.

Shape legend: B batch; `x` is any (B, ...) tensor, video latents are (B, C, F, H, W).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Literal, get_args

import torch
from torch import Tensor

from vpt.sampling.ode import VelocityFn, as_column, euler_step
from vpt.sampling.schedule import SigmaLike, per_sample_sigmas, sigma_grid_values

NoiseSchedule = Literal["flow_grpo", "dance_grpo", "flash_grpo"]

_HALF_LOG_TWO_PI = 0.5 * math.log(2 * math.pi)


@dataclass(frozen=True)
class SDEConfig:
    """The diffusion coefficient g(sigma) of the stochastic sampler."""

    schedule: NoiseSchedule = "flash_grpo"
    """Shape of g: "flow_grpo" a*sqrt(sigma/(1-sigma)), "dance_grpo" a, "flash_grpo" a*sigma."""
    noise_level: float = 0.98
    """The factor a in g (Flash-GRPO ~0.98, Flow-GRPO 0.7, DanceGRPO 0.25-0.3); 0 gives the ODE."""

    def __post_init__(self) -> None:
        if self.schedule not in get_args(NoiseSchedule):
            raise ValueError(
                f"SDEConfig.schedule must be one of {get_args(NoiseSchedule)}, "
                f"got {self.schedule!r}"
            )
        if not (self.noise_level >= 0 and math.isfinite(self.noise_level)):
            raise ValueError(
                f"SDEConfig.noise_level must be finite and >= 0 (0 = deterministic ODE), "
                f"got {self.noise_level}"
            )


@dataclass(frozen=True)
class SDEStep:
    """The outcome of one SDE step; per-sample quantities have shape (B,)."""

    sample: Tensor
    """x_next, in x's dtype: the drawn sample, or the stored sample that was re-evaluated."""
    mean: Tensor
    """Gaussian mean of x_next (fp32, x's shape); gradients reach v through it."""
    std: Tensor
    """Per-sample standard deviation g * sqrt(delta), fp32 (B,); 0 for a deterministic step."""
    log_prob: Tensor
    """Element-mean Gaussian log-density of the detached sample, fp32 (B,); NaN where std = 0."""
    gradient_scale: Tensor
    """|d mean / d v| / std, fp32 (B,), for temporal gradient rectification; NaN where std = 0."""


def _flow_grpo_coefficient(sigma: Tensor, sigma_next: Tensor, noise_level: float) -> Tensor:
    # At sigma = 1 substitute the first grid value below 1, which is this step's sigma_next.
    denominator_sigma = torch.where(sigma >= 1, sigma_next, sigma)
    return noise_level * torch.sqrt(sigma / (1 - denominator_sigma))


def _dance_grpo_coefficient(sigma: Tensor, sigma_next: Tensor, noise_level: float) -> Tensor:
    return torch.full_like(sigma, noise_level)


def _flash_grpo_coefficient(sigma: Tensor, sigma_next: Tensor, noise_level: float) -> Tensor:
    return noise_level * sigma


_COEFFICIENTS: dict[str, Callable[[Tensor, Tensor, float], Tensor]] = {
    "flow_grpo": _flow_grpo_coefficient,
    "dance_grpo": _dance_grpo_coefficient,
    "flash_grpo": _flash_grpo_coefficient,
}


def diffusion_coefficient(sigma: SigmaLike, sigma_next: SigmaLike, config: SDEConfig) -> Tensor:
    """g for the step sigma -> sigma_next, fp32 (B,) when given tensors, 0 where sigma_next = 0.

    Python floats give a 0-d tensor.
    """
    sigma_B = torch.as_tensor(sigma, dtype=torch.float32)
    sigma_next_B = torch.as_tensor(sigma_next, dtype=torch.float32, device=sigma_B.device)
    g_B = _COEFFICIENTS[config.schedule](sigma_B, sigma_next_B, config.noise_level)
    return torch.where(sigma_next_B > 0, g_B, torch.zeros_like(g_B))


def gaussian_log_prob(sample: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    """log N(sample; mean, std^2) averaged over all non-batch elements: shape (B,).

    `std` is per sample (B,) or broadcastable to `sample` once trailing singleton dims are added;
    it must be > 0. Computed in fp32 (fp64 if an input is fp64). This is the only implementation
    of the Gaussian log-density in vpt; callers that want gradients only through `mean` pass
    `sample.detach()`.
    """
    compute_dtype = torch.promote_types(
        torch.promote_types(sample.dtype, mean.dtype), torch.float32
    )
    sample_f = sample.to(compute_dtype)
    std_f = std.to(compute_dtype)
    std_f = std_f.reshape(*std_f.shape, *([1] * (sample_f.ndim - std_f.ndim)))
    log_density = (
        -((sample_f - mean.to(compute_dtype)) ** 2) / (2 * std_f**2)
        - torch.log(std_f)
        - _HALF_LOG_TWO_PI
    )
    return log_density.reshape(log_density.shape[0], -1).mean(dim=1)


def sde_step(
    x: Tensor,
    v: Tensor,
    sigma: SigmaLike,
    sigma_next: SigmaLike,
    config: SDEConfig,
    generator: torch.Generator | None = None,
    sample: Tensor | None = None,
) -> SDEStep:
    """One Euler-Maruyama step sigma -> sigma_next with its Gaussian log-probability.

    Draws x_next = mean + std * eps with eps from `generator` (drawn on the generator's device,
    then moved to x's), or, when `sample` is given, re-evaluates the log-probability of that
    stored x_next under the current mean: this is how GRPO recomputes the policy's log-prob,
    and with unchanged weights it reproduces the rollout's log_prob bit for bit. The math runs
    in fp32 (fp64 for fp64 x); a drawn sample is rounded to x's dtype before its log-prob is
    taken, so the stored tensor is exactly what was scored. sigma and sigma_next are floats or
    (B,) tensors with 1 >= sigma > sigma_next >= 0. A generator is required unless a sample is
    given or noise_level is 0. A drawn sample keeps its autograd link to v (reparameterisation);
    log_prob never differentiates through the sample, only through the mean.
    """
    if v.shape != x.shape:
        raise ValueError(f"v must have x's shape {tuple(x.shape)}, got {tuple(v.shape)}")
    if sample is not None and sample.shape != x.shape:
        raise ValueError(f"sample must have x's shape {tuple(x.shape)}, got {tuple(sample.shape)}")
    sigma_B = per_sample_sigmas(sigma, x)
    sigma_next_B = per_sample_sigmas(sigma_next, x)
    if not bool(torch.all((sigma_B <= 1) & (sigma_B > sigma_next_B) & (sigma_next_B >= 0))):
        raise ValueError(
            f"an SDE step needs 1 >= sigma > sigma_next >= 0, got sigma={sigma_B.tolist()}, "
            f"sigma_next={sigma_next_B.tolist()}"
        )
    g_B = diffusion_coefficient(sigma_B, sigma_next_B, config)
    delta_B = sigma_B - sigma_next_B
    x_coefficient_B = 1 - g_B**2 * delta_B / (2 * sigma_B)
    v_coefficient_B = delta_B * (1 + g_B**2 * (1 - sigma_B) / (2 * sigma_B))
    compute_dtype = torch.promote_types(x.dtype, torch.float32)
    mean = as_column(x_coefficient_B, x) * x.to(compute_dtype) - v.to(compute_dtype) * as_column(
        v_coefficient_B, x
    )
    std_B = g_B * torch.sqrt(delta_B)

    if sample is None:
        if config.noise_level == 0:
            sample = mean.to(x.dtype)
        elif generator is None:
            raise ValueError(
                "sde_step needs an explicit torch.Generator to draw noise (or a stored `sample` "
                "to re-evaluate); vpt samplers never use the global RNG"
            )
        else:
            noise = torch.randn(
                x.shape, generator=generator, device=generator.device, dtype=compute_dtype
            ).to(x.device)
            sample = (mean + as_column(std_B, x) * noise).to(x.dtype)

    is_stochastic_B = std_B > 0
    nan_B = torch.full_like(std_B, math.nan)
    log_prob_B = torch.where(
        is_stochastic_B,
        gaussian_log_prob(sample.detach(), mean, torch.where(is_stochastic_B, std_B, 1.0)),
        nan_B,
    )
    gradient_scale_B = torch.where(
        is_stochastic_B, v_coefficient_B / torch.where(is_stochastic_B, std_B, 1.0), nan_B
    )
    return SDEStep(
        sample=sample,
        mean=mean,
        std=std_B,
        log_prob=log_prob_B,
        gradient_scale=gradient_scale_B,
    )


@dataclass(frozen=True)
class SDETransition:
    """One recorded stochastic step of a trajectory: what GRPO stores and later re-scores."""

    index: int
    """Step index i into the grid: the step sigmas[i] -> sigmas[i + 1]."""
    sigma: float
    """Noise level before the step."""
    sigma_next: float
    """Noise level after the step."""
    x: Tensor
    """Latent before the step (B, ...)."""
    x_next: Tensor
    """Drawn latent after the step (B, ...)."""
    log_prob: Tensor
    """Element-mean log-probability of x_next under the sampling policy, fp32 (B,)."""
    std: Tensor
    """Step standard deviation, fp32 (B,)."""
    gradient_scale: Tensor
    """|d mean / d v| / std, fp32 (B,)."""


@dataclass(frozen=True)
class SDETrajectory:
    """The result of `sample_sde`: the final latent and every stochastic transition, in order."""

    sample: Tensor
    """Latent at the last sigma of the grid (the clean sample for a full grid)."""
    transitions: tuple[SDETransition, ...]
    """The SDE steps, in increasing index; ODE steps are not recorded."""


def _stochastic_indices(grid: list[float], sde_steps: Collection[int] | None) -> set[int]:
    num_steps = len(grid) - 1
    if sde_steps is None:
        return {index for index in range(num_steps) if grid[index + 1] > 0}
    for index in sde_steps:
        if isinstance(index, bool) or not isinstance(index, int):
            raise ValueError(f"sde_steps must hold integer step indices, got {index!r}")
    indices = set(sde_steps)
    for index in sorted(indices):
        if not 0 <= index < num_steps:
            raise ValueError(
                f"sde_steps index {index} is outside the {num_steps} steps [0, {num_steps - 1}]"
            )
        if grid[index + 1] == 0:
            raise ValueError(
                f"step {index} ends at sigma 0 and is always deterministic (the Euler step to "
                f"the clean sample); choose SDE steps among 0..{num_steps - 2}"
            )
    return indices


def sample_sde(
    velocity_fn: VelocityFn,
    noise: Tensor,
    sigmas: Tensor,
    config: SDEConfig,
    generator: torch.Generator,
    sde_steps: Collection[int] | None = None,
) -> SDETrajectory:
    """Sample along `sigmas` with SDE steps at `sde_steps` and Euler ODE steps elsewhere.

    `sde_steps=None` makes every step stochastic except one ending at sigma 0, which is always
    deterministic (see the module docstring); naming such a step raises. A single index k gives
    the ODE-to-SDE rollout of single-timestep GRPO: ODE before k, one SDE step at k, ODE after.
    Noise is drawn from `generator` in step order. Autograd is left as the caller set it.
    """
    grid = sigma_grid_values(sigmas)
    stochastic_indices = _stochastic_indices(grid, sde_steps)
    x = noise
    transitions: list[SDETransition] = []
    for index, (sigma, sigma_next) in enumerate(itertools.pairwise(grid)):
        sigma_B = torch.full((x.shape[0],), sigma, dtype=torch.float32, device=x.device)
        v = velocity_fn(x, sigma_B)
        if index not in stochastic_indices:
            x = euler_step(x, v, sigma, sigma_next)
            continue
        step = sde_step(x, v, sigma, sigma_next, config, generator)
        transitions.append(
            SDETransition(
                index=index,
                sigma=sigma,
                sigma_next=sigma_next,
                x=x,
                x_next=step.sample,
                log_prob=step.log_prob,
                std=step.std,
                gradient_scale=step.gradient_scale,
            )
        )
        x = step.sample
    return SDETrajectory(sample=x, transitions=tuple(transitions))

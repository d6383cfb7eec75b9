"""Deterministic flow-matching sampling: the Euler ODE step and classifier-free guidance.

The probability-flow ODE of rectified flow (Liu et al., "Flow Straight and Fast", arXiv
2209.03003; Lipman et al., "Flow Matching for Generative Modeling", arXiv 2210.02747) is
dx/dsigma = v(x, sigma) with v = noise - x0, integrated from sigma = 1 to 0 by explicit Euler:

    x_next = x + (sigma_next - sigma) * v(x, sigma).

Classifier-free guidance (Ho & Salimans, arXiv 2207.12598, eq. 6, written for velocities):
v = v_uncond + scale * (v_cond - v_uncond).

Samplers here are pure functions: no hidden step counter and no global RNG. They neither enable
nor disable autograd: call them under `torch.no_grad()` for rollouts, or with gradients for
self-forcing distillation, which backpropagates through the sampler.

Shape legend: B batch; `x` is any (B, ...) tensor, video latents are (B, C, F, H, W).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import torch
from torch import Tensor

from vpt.sampling.schedule import SigmaLike, per_sample_sigmas, sigma_grid_values

VelocityFn = Callable[[Tensor, Tensor], Tensor]
"""(x of shape (B, ...), fp32 sigma of shape (B,)) -> velocity of x's shape."""

StepCallback = Callable[[int, Tensor], None]
"""Called as on_step(step_index, x_after_step); may raise to stop sampling."""


def as_column(values: Tensor, x: Tensor) -> Tensor:
    """Reshape per-sample values (B,) to (B, 1, ..., 1) so they broadcast against x."""
    return values.reshape(values.shape[0], *([1] * (x.ndim - 1)))


def euler_step(x: Tensor, v: Tensor, sigma: SigmaLike, sigma_next: SigmaLike) -> Tensor:
    """One Euler step x + (sigma_next - sigma) * v, returned in x's dtype.

    Computed in fp32 (fp64 for fp64 x), as diffusers' flow-matching schedulers do for bf16 latents.
    sigma and sigma_next are Python floats or (B,) tensors (samples may be at different levels).
    """
    if v.shape != x.shape:
        raise ValueError(f"v must have x's shape {tuple(x.shape)}, got {tuple(v.shape)}")
    sigma_B = per_sample_sigmas(sigma, x)
    sigma_next_B = per_sample_sigmas(sigma_next, x)
    compute_dtype = torch.promote_types(x.dtype, torch.float32)
    x_next = x.to(compute_dtype) + as_column(sigma_next_B - sigma_B, x) * v.to(compute_dtype)
    return x_next.to(x.dtype)


def classifier_free_guidance(v_cond: Tensor, v_uncond: Tensor, scale: float) -> Tensor:
    """Guided velocity v_uncond + scale * (v_cond - v_uncond); scale 1 returns v_cond."""
    return v_uncond + scale * (v_cond - v_uncond)


def sample_ode(
    velocity_fn: VelocityFn,
    noise: Tensor,
    sigmas: Tensor,
    on_step: StepCallback | None = None,
    first_frame: Tensor | None = None,
) -> Tensor:
    """Integrate the flow ODE with Euler steps along `sigmas`, starting from `noise`.

    `sigmas` is a strictly decreasing grid, usually `sampling_sigmas(num_steps, shift)`; a
    slice of it runs part of a trajectory (then `noise` is the latent at `sigmas[0]`).
    `on_step(i, x)` runs after step i (sigmas[i] -> sigmas[i + 1]); an exception raised there
    stops sampling and propagates. Returns the latent at `sigmas[-1]` in noise's dtype.

    `first_frame` (B, C, 1, H, W), for video latents (B, C, F, H, W): image-to-video by
    replacement, as Wan's image-to-video model is conditioned on a first frame; that clean
    latent frame is written over frame 0 before every step and in the result, so the network
    always sees it clean and only the other frames are integrated.
    """
    if first_frame is not None and (
        noise.ndim != 5 or first_frame.shape != (*noise.shape[:2], 1, *noise.shape[3:])
    ):
        raise ValueError(
            f"first_frame must be one latent frame {(*noise.shape[:2], 1, *noise.shape[3:])} of "
            f"the (B, C, F, H, W) latents {tuple(noise.shape)}, got {tuple(first_frame.shape)}"
        )
    grid = sigma_grid_values(sigmas)
    x = noise
    for index, (sigma, sigma_next) in enumerate(itertools.pairwise(grid)):
        if first_frame is not None:
            x = with_first_frame(x, first_frame)
        sigma_B = torch.full((x.shape[0],), sigma, dtype=torch.float32, device=x.device)
        x = euler_step(x, velocity_fn(x, sigma_B), sigma, sigma_next)
        if on_step is not None:
            on_step(index, x)
    return x if first_frame is None else with_first_frame(x, first_frame)


def with_first_frame(x_BCFHW: Tensor, first_BC1HW: Tensor) -> Tensor:
    """`x` with its latent frame 0 replaced by `first` (a new tensor: autograd-safe); the
    image-to-video-by-replacement conditioning of `sample_ode` and two-pass GRPO rollouts."""
    return torch.cat([first_BC1HW.to(x_BCFHW.dtype), x_BCFHW[:, :, 1:]], dim=2)

"""Noise-level schedules for flow matching: the sampling grid and the training-time density.

Conventions (shared by the whole project): sigma in [0, 1], 1 is pure noise;
x_sigma = (1 - sigma) * x0 + sigma * noise; sampling runs from sigma = 1 down to 0.

- Timestep shift, Esser et al., "Scaling Rectified Flow Transformers for High-Resolution Image
  Synthesis" (SD3, arXiv 2403.03206), eq. 23 with alpha = shift:
  sigma' = shift * sigma / (1 + (shift - 1) * sigma). shift > 1 spends more steps at high noise,
  which video models (Wan, HunyuanVideo) need.
- Logit-normal training density, same paper, eq. 19: sigma = sigmoid(m + s * z), z ~ N(0, 1),
  followed by the same shift.

Shape legend: B batch, N number of sampling steps.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Literal, get_args

import torch
from torch import Tensor

TimestepDensity = Literal["uniform", "logit_normal"]

SigmaLike = float | Tensor
"""A noise level given as a Python float (the whole batch) or a (B,) tensor (one per sample)."""

TRAINING_SIGMA_MARGIN = 1e-5
"""Training sigmas are clamped to [margin, 1 - margin], so they lie strictly inside (0, 1)."""


def shift_sigmas(sigmas: Tensor, shift: float) -> Tensor:
    """Apply the SD3 timestep shift `shift * s / (1 + (shift - 1) * s)` element-wise.

    The map fixes 0 and 1 exactly and is strictly increasing for every shift > 0.
    """
    if not shift > 0:
        raise ValueError(f"shift must be > 0 (1 means no shift), got {shift}")
    return shift * sigmas / (1 + (shift - 1) * sigmas)


def per_sample_sigmas(sigma: SigmaLike, x: Tensor) -> Tensor:
    """`sigma` as an fp32 (B,) tensor on x's device, B = x.shape[0].

    Accepts a Python number, a 0-d tensor or a (B,) tensor; raises ValueError for any other shape.
    """
    batch_size = x.shape[0]
    sigma_B = torch.as_tensor(sigma, dtype=torch.float32, device=x.device)
    if sigma_B.ndim == 0:
        return sigma_B.expand(batch_size)
    if sigma_B.shape != (batch_size,):
        raise ValueError(
            f"sigma must be a number, a 0-d tensor or a ({batch_size},) tensor matching the "
            f"batch of x {tuple(x.shape)}, got shape {tuple(sigma_B.shape)}"
        )
    return sigma_B


def sampling_sigmas(
    num_steps: int, shift: float = 1.0, device: torch.device | str | None = None
) -> Tensor:
    """The fp32 grid of `num_steps + 1` sigmas, strictly decreasing from exactly 1.0 to 0.0.

    A uniform grid `linspace(1, 0, num_steps + 1)` passed through `shift_sigmas` (computed in
    float64, then rounded once to fp32). Step i goes from `sigmas[i]` to `sigmas[i + 1]`.
    """
    if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 1:
        raise ValueError(f"num_steps must be an integer >= 1, got {num_steps!r}")
    if not shift > 0:
        raise ValueError(f"shift must be > 0 (1 means no shift), got {shift}")
    uniform_N = torch.linspace(1.0, 0.0, num_steps + 1, dtype=torch.float64)
    sigmas_N = shift_sigmas(uniform_N, shift)
    # Pin the endpoints: the shift fixes them mathematically; make sure rounding does too.
    sigmas_N[0] = 1.0
    sigmas_N[-1] = 0.0
    return sigmas_N.to(device=device, dtype=torch.float32)


def sigma_grid_values(sigmas: Tensor) -> list[float]:
    """Check a sampling grid and return it as Python floats (one host transfer for the loop).

    A grid is a 1-D tensor of at least two values in [0, 1], strictly decreasing. It need not
    start at 1 or end at 0: a slice of `sampling_sigmas` runs part of a trajectory (for example
    the ODE prefix before a GRPO branching step).
    """
    if sigmas.ndim != 1 or sigmas.shape[0] < 2:
        raise ValueError(
            f"sigmas must be a 1-D tensor of at least 2 values (e.g. sampling_sigmas(num_steps, "
            f"shift)), got shape {tuple(sigmas.shape)}"
        )
    values = [float(value) for value in sigmas.detach().cpu().tolist()]
    if not all(0.0 <= value <= 1.0 for value in values):
        raise ValueError(f"sigmas must lie in [0, 1], got {values}")
    if not all(high > low for high, low in itertools.pairwise(values)):
        raise ValueError(f"sigmas must be strictly decreasing, got {values}")
    return values


@dataclass(frozen=True)
class TimestepSamplingConfig:
    """How flow-matching training draws the noise level of each example."""

    kind: TimestepDensity = "logit_normal"
    """Density of the unshifted sigma: "uniform" on (0, 1) or SD3's "logit_normal"."""
    shift: float = 1.0
    """SD3 timestep shift applied after drawing (1 = none; Wan-style video models use 3-5)."""
    logit_mean: float = 0.0
    """Mean m of the normal variable inside the sigmoid (logit_normal only)."""
    logit_std: float = 1.0
    """Standard deviation s of the normal variable inside the sigmoid (logit_normal only)."""
    high_noise_fraction: float = 0.0
    """Fraction of examples (each drawn independently) whose sigma is instead uniform on
    [high_noise_min, 1): extra weight on the nearly-pure-noise levels where a sample's layout
    and motion are decided (0 = off, and then the draws are exactly those of the density)."""
    high_noise_min: float = 0.9
    """Lower end of the high-noise band."""

    def __post_init__(self) -> None:
        if self.kind not in get_args(TimestepDensity):
            raise ValueError(
                f"TimestepSamplingConfig.kind must be one of {get_args(TimestepDensity)}, "
                f"got {self.kind!r}"
            )
        if not self.shift > 0:
            raise ValueError(f"TimestepSamplingConfig.shift must be > 0, got {self.shift}")
        if not self.logit_std > 0:
            raise ValueError(f"TimestepSamplingConfig.logit_std must be > 0, got {self.logit_std}")
        if not 0.0 <= self.high_noise_fraction <= 1.0:
            raise ValueError(
                "TimestepSamplingConfig.high_noise_fraction must be in [0, 1], got "
                f"{self.high_noise_fraction}"
            )
        if not 0.0 <= self.high_noise_min < 1.0:
            raise ValueError(
                "TimestepSamplingConfig.high_noise_min must be in [0, 1), got "
                f"{self.high_noise_min}"
            )


def _draw_uniform(
    batch_size: int, config: TimestepSamplingConfig, generator: torch.Generator
) -> Tensor:
    return torch.rand(batch_size, generator=generator, device=generator.device)


def _draw_logit_normal(
    batch_size: int, config: TimestepSamplingConfig, generator: torch.Generator
) -> Tensor:
    normal_B = torch.randn(batch_size, generator=generator, device=generator.device)
    return torch.sigmoid(config.logit_mean + config.logit_std * normal_B)


_DENSITIES = {"uniform": _draw_uniform, "logit_normal": _draw_logit_normal}


def sample_training_sigmas(
    batch_size: int, config: TimestepSamplingConfig, generator: torch.Generator
) -> Tensor:
    """Draw `batch_size` fp32 sigmas strictly inside (0, 1) for the flow-matching loss.

    The unshifted sigma comes from `config.kind`, then `shift_sigmas(., config.shift)` is
    applied, a `config.high_noise_fraction` of the examples is redrawn uniformly from the
    high-noise band, and the result is clamped to
    [TRAINING_SIGMA_MARGIN, 1 - TRAINING_SIGMA_MARGIN].
    The tensor lives on `generator.device`.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    unshifted_B = _DENSITIES[config.kind](batch_size, config, generator)
    sigmas_B = shift_sigmas(unshifted_B, config.shift)
    if config.high_noise_fraction > 0:
        device = generator.device
        chosen_B = torch.rand(batch_size, generator=generator, device=device)
        chosen_B = chosen_B < config.high_noise_fraction
        band_B = torch.rand(batch_size, generator=generator, device=device)
        high_B = config.high_noise_min + (1.0 - config.high_noise_min) * band_B
        sigmas_B = torch.where(chosen_B, high_B, sigmas_B)
    return sigmas_B.clamp(TRAINING_SIGMA_MARGIN, 1 - TRAINING_SIGMA_MARGIN)

"""The rectified-flow / flow-matching training loss (Lipman et al. 2023; Liu et al. 2023),
as used to pre-train and fine-tune Wan2.1 and by the paper's SFT stage:

    x_sigma = (1 - sigma) x0 + sigma * noise,     target velocity v* = noise - x0,
    L = E_{sigma, noise} || v_theta(x_sigma, sigma, c) - v* ||^2.

sigma is drawn from a (shifted) logit-normal density by `vpt.sampling.sample_training_sigmas`.

Shape legend: B batch, C channels, F frames, H/W height/width.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

VelocityModel = Callable[[Tensor, Tensor], Tensor]


def noisy_latents(x0_BCFHW: Tensor, noise_BCFHW: Tensor, sigma_B: Tensor) -> Tensor:
    """x_sigma = (1 - sigma) x0 + sigma * noise."""
    sigma = sigma_B.view(-1, *([1] * (x0_BCFHW.ndim - 1))).to(x0_BCFHW.dtype)
    return (1.0 - sigma) * x0_BCFHW + sigma * noise_BCFHW


def flow_matching_loss(
    velocity_model: VelocityModel, x0_BCFHW: Tensor, noise_BCFHW: Tensor, sigma_B: Tensor
) -> Tensor:
    """Per-sample mean squared velocity error `(B,)`; average it for the training loss."""
    x_sigma = noisy_latents(x0_BCFHW, noise_BCFHW, sigma_B)
    predicted = velocity_model(x_sigma, sigma_B)
    return (predicted.float() - (noise_BCFHW - x0_BCFHW).float()).pow(2).flatten(1).mean(1)

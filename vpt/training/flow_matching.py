"""The rectified-flow / flow-matching training loss (Lipman et al. 2023; Liu et al. 2023),
as used to pre-train and fine-tune Wan2.1 and by the paper's SFT stage:

    x_sigma = (1 - sigma) x0 + sigma * noise,     target velocity v* = noise - x0,
    L = E_{sigma, noise} || v_theta(x_sigma, sigma, c) - v* ||^2.

sigma is drawn from a (shifted) logit-normal density by `vpt.sampling.sample_training_sigmas`,
one per clip `(B,)`, or one per group of consecutive frames `(B, T)` (T divides F; each group is
one transformer frame, see `vpt.training.frame_noise`); the target is the same either way.

Shape legend: B batch, C channels, F frames, T frame groups, H/W height/width.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

VelocityModel = Callable[[Tensor, Tensor], Tensor]


def noisy_latents(x0_BCFHW: Tensor, noise_BCFHW: Tensor, sigma: Tensor) -> Tensor:
    """x_sigma = (1 - sigma) x0 + sigma * noise, with sigma `(B,)` or per frame group `(B, T)`."""
    sigma_B1F11 = frame_sigmas(sigma, x0_BCFHW.shape[2]).to(x0_BCFHW.dtype)
    return (1.0 - sigma_B1F11) * x0_BCFHW + sigma_B1F11 * noise_BCFHW


def frame_sigmas(sigma: Tensor, frames: int) -> Tensor:
    """sigma `(B,)` or `(B, T)` broadcastable over `(B, C, F, H, W)`: `(B, 1, 1 or F, 1, 1)`."""
    if sigma.ndim == 1:
        return sigma.view(-1, 1, 1, 1, 1)
    if sigma.ndim != 2 or frames % sigma.shape[1]:
        raise ValueError(
            f"sigma must have shape (B,) or (B, T) with T dividing the {frames} frames, "
            f"got {tuple(sigma.shape)}"
        )
    per_frame_BF = sigma.repeat_interleave(frames // sigma.shape[1], dim=1)
    return per_frame_BF[:, None, :, None, None]


def foreground_weights(x0_BCFHW: Tensor, object_weight: float, threshold: float) -> Tensor:
    """Loss weights `(B, 1, F, H, W)`: `object_weight` where a latent position differs from its
    frame's background, 1 elsewhere.

    The background of a shapes-world frame is one colour, so its latent is close to the frame's
    per-channel median over positions; a position whose latent lies more than `threshold`
    (Euclidean, in normalised latent units) from that median shows the object or its edge. The
    object covers a few percent of the frame, so an unweighted loss spends almost all of its
    gradient on the background; this is the autoencoder's object weighting
    (`vpt.training.autoencoder`) carried to the transformer's loss.
    """
    if object_weight < 1.0:
        raise ValueError(f"object_weight must be >= 1 (1 = unweighted), got {object_weight}")
    if threshold <= 0.0:
        raise ValueError(f"the foreground threshold must be > 0, got {threshold}")
    x0 = x0_BCFHW.float()
    background = x0.flatten(3).median(dim=3).values[..., None, None]
    distance_B1FHW = (x0 - background).pow(2).sum(1, keepdim=True).sqrt()
    return 1.0 + (object_weight - 1.0) * (distance_B1FHW > threshold).float()


def flow_matching_loss(
    velocity_model: VelocityModel,
    x0_BCFHW: Tensor,
    noise_BCFHW: Tensor,
    sigma: Tensor,
    clean_first_frame_B: Tensor | None = None,
    weight_B1FHW: Tensor | None = None,
) -> Tensor:
    """Per-sample mean squared velocity error `(B,)`; average it for the training loss.

    `sigma` is `(B,)` or `(B, T)`; the model receives it as given. Where `clean_first_frame_B`
    (bool `(B,)`) is set, the first latent frame of the input is the clean `x0` frame (first-frame
    conditioning by replacement, as in image-to-video) and is left out of that sample's loss.
    `weight_B1FHW` (e.g. `foreground_weights`) makes the mean a weighted one per sample.
    """
    x_sigma = noisy_latents(x0_BCFHW, noise_BCFHW, sigma)
    if clean_first_frame_B is not None:
        x_sigma = x_sigma.clone()
        x_sigma[clean_first_frame_B, :, :1] = x0_BCFHW[clean_first_frame_B, :, :1].to(x_sigma.dtype)
    predicted = velocity_model(x_sigma, sigma)
    error = (predicted.float() - (noise_BCFHW - x0_BCFHW).float()).pow(2)
    if clean_first_frame_B is None and weight_B1FHW is None:
        return error.flatten(1).mean(1)
    weight = torch.ones_like(error)
    if weight_B1FHW is not None:
        weight = weight * weight_B1FHW.to(weight)
    if clean_first_frame_B is not None:
        weight[clean_first_frame_B, :, :1] = 0.0
    return (error * weight).flatten(1).sum(1) / weight.flatten(1).sum(1)

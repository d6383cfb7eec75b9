"""The losses of autoregressive distillation: ODE regression and distribution matching (DMD).

Stage 1, ODE initialisation (CausVid, Yin et al., arXiv 2412.07772, section 4.3): the
bidirectional teacher integrates its probability-flow ODE (Euler, with classifier-free
guidance) on a grid that contains the student's shift-warped step list exactly; the latents at
those steps and the final clean latent are stored. The causal student, in its full masked
forward, sees for every chunk the trajectory latent at a random step index k (or the clean
latent, k = K) and regresses its clean prediction onto the trajectory's end; chunks given the
clean latent (sigma = 0) are context only and carry no loss.

Stage 2, self-forcing DMD (Self-Forcing, Huang et al., arXiv 2506.08009, section 3.3; DMD, Yin
et al., arXiv 2311.18828, eq. 7-8; `model/dmd.py` of guandeh17/Self-Forcing): for a generated
video x, draw sigma (shift-warped uniform, clamped), noise it, x_t = (1 - sigma) x + sigma n,
and predict the clean video with the frozen teacher with CFG ("real score") and with the
trainable critic ("fake score"). The generator moves along

    Delta = (x0_fake - x0_real) / mean |x - x0_real|         (per-sample normalisation, eq. 8)

through the surrogate L_G = 1/2 mean((x - stopgrad(x - Delta))^2), whose gradient with respect
to x is exactly Delta / numel(x). The critic learns the student's distribution by flow matching
on the student's (detached) samples: mean((v_critic(x_t) - (n - x))^2).

Shape legend: B batch, K student steps, C latent channels, F latent frames, H/W latent size.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from diffusers import WanTransformer3DModel
from torch import Tensor

from vpt.generator import Generator, SamplerSettings
from vpt.models.causal_transformer import CausalWanTransformer, velocity_from_output
from vpt.models.kv_cache import TextCache
from vpt.models.transformer import Prediction, predict_velocity
from vpt.sampling import sampling_sigmas, shift_sigmas
from vpt.training.flow_matching import flow_matching_loss, noisy_latents

VelocityFn = Callable[[Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class Trajectories:
    """Teacher ODE latents at the student's step list, and where they end."""

    noisy: Tensor
    """`(N, K, C, F, H, W)`: the latent at each student sigma (index 0 is the initial noise)."""
    clean: Tensor
    """`(N, C, F, H, W)`: the end of each trajectory (sigma = 0)."""
    sigmas: tuple[float, ...]
    """The K student sigmas, 1 first."""
    prompts: tuple[str, ...]
    """The prompt of each trajectory."""


def stored_step_indices(
    student_sigmas: Sequence[float], teacher_steps: int, shift: float
) -> list[int]:
    """Indices of the teacher's sampling grid that are exactly the student's sigmas."""
    num_steps = len(student_sigmas)
    if teacher_steps % num_steps:
        raise ValueError(
            f"teacher_steps ({teacher_steps}) must be a multiple of the student's steps "
            f"({num_steps}) so the teacher's grid holds the student's sigmas"
        )
    grid = sampling_sigmas(teacher_steps, shift)
    stride = teacher_steps // num_steps
    indices = [k * stride for k in range(num_steps)]
    for index, wanted in zip(indices, student_sigmas, strict=True):
        if abs(float(grid[index]) - wanted) > 1e-6:
            raise ValueError(
                f"teacher grid value {float(grid[index])} at {index} is not the student sigma "
                f"{wanted}: teacher and student must use the same shift"
            )
    return indices


@torch.no_grad()
def teacher_trajectories(
    teacher: Generator,
    prompts: Sequence[str],
    seeds: Sequence[int],
    student_sigmas: Sequence[float],
    sampler: SamplerSettings,
) -> tuple[Tensor, Tensor]:
    """Run the teacher's guided Euler ODE; return latents at the student sigmas and the end.

    `sampler.num_steps` must be a multiple of the student's steps and `sampler.shift` its
    shift, so every student sigma is a point of the teacher's grid (checked).
    """
    if sampler.anchor_steps:
        raise ValueError("teacher trajectories are one-pass ODE paths: use anchor_steps=0")
    indices = stored_step_indices(student_sigmas, sampler.num_steps, sampler.shift)
    noise = teacher.initial_noise(seeds)
    stored: dict[int, Tensor] = {0: noise.clone()}

    def record(step: int, latents: Tensor) -> None:
        if step + 1 in indices:
            stored[step + 1] = latents.clone()

    clean = teacher.generate_latents(prompts, seeds, sampler, on_step=record)
    return torch.stack([stored[i] for i in indices], dim=1), clean


def ode_regression_loss(
    student: CausalWanTransformer,
    text: TextCache,
    noisy_BKCFHW: Tensor,
    clean_BCFHW: Tensor,
    sigmas: Sequence[float],
    prediction: Prediction,
    generator: torch.Generator,
) -> Tensor:
    """MSE of the student's clean prediction, each chunk at a random trajectory step.

    Each (sample, chunk) draws k in 0..K; k = K feeds the clean latent at sigma 0 (context,
    no loss). The loss averages the squared error over the noisy chunks' elements.
    """
    batch, num_steps = noisy_BKCFHW.shape[:2]
    if len(sigmas) != num_steps:
        raise ValueError(f"{len(sigmas)} sigmas for trajectories of {num_steps} steps")
    patch = student.temporal_patch
    frames = clean_BCFHW.shape[2] // patch
    chunk = student.window.chunk_frames
    num_chunks = -(-frames // chunk)
    index_BN = torch.randint(0, num_steps + 1, (batch, num_chunks), generator=generator)
    index_BT = index_BN.repeat_interleave(chunk, 1)[:, :frames]
    levels = torch.tensor([*sigmas, 0.0])
    sigma_BT = levels[index_BT].to(clean_BCFHW.device)
    candidates = torch.cat([noisy_BKCFHW, clean_BCFHW[:, None]], dim=1)
    index_BF = index_BT.repeat_interleave(patch, 1).to(clean_BCFHW.device)
    gather = index_BF[:, None, None, :, None, None].expand(-1, 1, *candidates.shape[2:])
    x_BCFHW = candidates.gather(1, gather).squeeze(1)
    output = student(x_BCFHW, sigma_BT, text)
    velocity = velocity_from_output(output, x_BCFHW, sigma_BT, patch, prediction)
    sigma_F = sigma_BT.repeat_interleave(patch, 1)[:, None, :, None, None]
    predicted = x_BCFHW - sigma_F * velocity
    weight = (sigma_F > 0).to(predicted.dtype).expand_as(predicted)
    squared = (predicted.float() - clean_BCFHW.float()).pow(2) * weight
    return squared.sum() / weight.sum().clamp(min=1.0)


def dmd_direction(x_BCFHW: Tensor, real_x0: Tensor, fake_x0: Tensor) -> Tensor:
    """Delta = (x0_fake - x0_real) / mean|x - x0_real| per sample (DMD eq. 8), NaN-free."""
    normaliser = (x_BCFHW.double() - real_x0.double()).abs().flatten(1).mean(1)
    scale = normaliser.view(-1, *([1] * (x_BCFHW.ndim - 1)))
    return torch.nan_to_num((fake_x0.double() - real_x0.double()) / scale)


def dmd_surrogate_loss(x_BCFHW: Tensor, direction: Tensor) -> Tensor:
    """1/2 mean((x - stopgrad(x - Delta))^2) in float64; its gradient in x is Delta / numel."""
    target = (x_BCFHW.double() - direction).detach()
    return 0.5 * (x_BCFHW.double() - target).pow(2).mean()


def draw_score_sigmas(
    batch: int, shift: float, bounds: tuple[float, float], generator: torch.Generator
) -> Tensor:
    """Per-sample sigma for DMD and the critic: uniform, shift-warped, clamped to `bounds`."""
    uniform = torch.rand(batch, generator=generator)
    return shift_sigmas(uniform, shift).clamp(*bounds)


@dataclass(frozen=True)
class DMDOutputs:
    """What one DMD evaluation measured."""

    loss: Tensor
    """The generator surrogate loss (back-propagate it)."""
    direction_norm: float
    """Mean |Delta| (Self-Forcing's `dmdtrain_gradient_norm`)."""
    sigma_mean: float
    """Mean score sigma of the batch."""


def dmd_generator_loss(
    video_BCFHW: Tensor,
    real_velocity: VelocityFn,
    fake_velocity: VelocityFn,
    sigma_B: Tensor,
    noise_BCFHW: Tensor,
) -> DMDOutputs:
    """The DMD surrogate for `video` (which carries the student's gradient).

    `real_velocity` is the teacher with CFG and `fake_velocity` the critic, both called without
    gradient on the noised (detached) video.
    """
    with torch.no_grad():
        x = video_BCFHW.detach()
        noisy = noisy_latents(x, noise_BCFHW, sigma_B)
        sigma = sigma_B.view(-1, 1, 1, 1, 1).to(x.dtype)
        real_x0 = noisy - sigma * real_velocity(noisy, sigma_B)
        fake_x0 = noisy - sigma * fake_velocity(noisy, sigma_B)
        direction = dmd_direction(x, real_x0, fake_x0)
    return DMDOutputs(
        loss=dmd_surrogate_loss(video_BCFHW, direction),
        direction_norm=float(direction.abs().mean()),
        sigma_mean=float(sigma_B.mean()),
    )


def critic_loss(
    critic: WanTransformer3DModel,
    video_BCFHW: Tensor,
    text_BLD: Tensor,
    sigma_B: Tensor,
    noise_BCFHW: Tensor,
    prediction: Prediction,
) -> Tensor:
    """Flow matching of the critic ("fake score") on the student's detached samples."""

    def velocity(x: Tensor, sigma: Tensor) -> Tensor:
        return predict_velocity(critic, x, sigma, text_BLD, prediction)

    return flow_matching_loss(velocity, video_BCFHW.detach(), noise_BCFHW, sigma_B).mean()

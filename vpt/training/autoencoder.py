"""Train the per-frame latent autoencoder on the shapes world.

Like the VAE a real video model is built on (Wan's 3D VAE; Rombach et al. 2022 for the KL
autoencoder), this compresses frames so the diffusion transformer works on few tokens. The loss
is a foreground-weighted L1 reconstruction plus a small KL term,
L = mean(w * |x - D(z)|) + beta * KL(q(z|x) || N(0, I)), where w = 1 + foreground_weight on
pixels far from the frame's median colour: the object covers a few percent of a frame, and an
unweighted loss spends the capacity on the background first (colour and shape of the object
came out wrong). z is the posterior mean unless `sample_posterior` is set.
After training, per-channel latent statistics over the data are stored in the model config so
that latents are normalised to unit variance.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from vpt.config import config_to_dict
from vpt.generator import uint8_to_pixels
from vpt.models.autoencoder import FrameAutoencoderConfig, VideoAutoencoder, build_frame_autoencoder
from vpt.training.loop import LoopConfig, OptimConfig, train_loop
from vpt.world import ShapesWorld, WorldConfig


@dataclass(frozen=True)
class AutoencoderTrainingConfig:
    """A run of `vpt train autoencoder`."""

    world: WorldConfig = field(default_factory=WorldConfig)
    """The data: world geometry and defect mix."""
    data_seed: int = 1
    """Seed of the world clips the autoencoder sees."""
    model: FrameAutoencoderConfig = field(default_factory=FrameAutoencoderConfig)
    """Autoencoder size."""
    clips_per_step: int = 16
    """Clips drawn per step."""
    frames_per_clip: int = 4
    """Random frames taken from each clip per step."""
    kl_weight: float = 1e-6
    """Weight of the KL term."""
    foreground_weight: float = 9.0
    """Extra L1 weight on pixels that differ from the frame's median colour (the object)."""
    sample_posterior: bool = False
    """Decode a posterior sample instead of the mean during training."""
    statistics_clips: int = 256
    """Clips used to measure the latent mean and std after training."""
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=1e-3, ema_decay=0.0))
    """Optimizer."""
    loop: LoopConfig = field(default_factory=lambda: LoopConfig(steps=1500))
    """Run length and cadence."""


def _frame_batch(
    world: ShapesWorld, config: AutoencoderTrainingConfig, step: int, generator: torch.Generator
) -> Tensor:
    """`(N, 3 * g, H, W)` frames in [-1, 1] for `step` (clips are a function of the step).

    Each of `frames_per_clip` picks is a random run of g = `model.frames_per_latent`
    consecutive frames (one frame when g = 1), stacked frame-major as channels."""
    first = step * config.clips_per_step
    clips = np.stack([world[first + i].frames for i in range(config.clips_per_step)])
    group = config.model.frames_per_latent
    frames = clips.shape[1]
    if frames < group:
        raise ValueError(f"clips of {frames} frames are shorter than a group of {group}")
    starts = torch.randint(
        0, frames - group + 1, (config.clips_per_step, config.frames_per_clip), generator=generator
    ).numpy()
    picks = starts[:, :, None] + np.arange(group)  # (clips, picks, group)
    chosen = clips[np.arange(config.clips_per_step)[:, None, None], picks]  # (c, p, g, H, W, 3)
    pixels = uint8_to_pixels(chosen.reshape(-1, group, *clips.shape[2:]))  # (N, 3, g, H, W)
    return pixels.transpose(1, 2).flatten(1, 2)  # frame-major channels, as _stack_groups


@torch.no_grad()
def measure_latent_statistics(
    autoencoder: VideoAutoencoder, world: ShapesWorld, clips: int, first_index: int
) -> tuple[Tensor, Tensor]:
    """Per-channel mean and std of raw latents over `clips` world clips."""
    latents = []
    for start in range(0, clips, 32):
        count = min(32, clips - start)
        video = np.stack([world[first_index + start + i].frames for i in range(count)])
        latents.append(autoencoder.encode_raw(uint8_to_pixels(video).to(device_of(autoencoder))))
    stacked = torch.cat(latents).transpose(0, 1).flatten(1)
    return stacked.mean(1), stacked.std(1).clamp(min=1e-4)


def foreground_weights(frames_NCHW: Tensor, foreground_weight: float) -> Tensor:
    """1 on background pixels, 1 + foreground_weight where a pixel is far from the median."""
    median = frames_NCHW.flatten(2).median(dim=2).values[:, :, None, None]
    distance = (frames_NCHW - median).abs().amax(dim=1, keepdim=True)
    return 1.0 + foreground_weight * (distance > 0.15).to(frames_NCHW.dtype)


def device_of(autoencoder: VideoAutoencoder) -> torch.device:
    return autoencoder.latents_mean.device


def train_autoencoder(
    config: AutoencoderTrainingConfig, run_dir: Path, device: str = "cpu"
) -> VideoAutoencoder:
    """Train (or resume) and save the autoencoder to `run_dir/vae`; return it."""
    torch.manual_seed(config.loop.seed)
    autoencoder = VideoAutoencoder(build_frame_autoencoder(config.model)).to(device)
    world = ShapesWorld(config.world, seed=config.data_seed)

    def compute_loss(step: int, generator: torch.Generator) -> tuple[Tensor, dict[str, float]]:
        frames = _frame_batch(world, config, step, generator).to(device)
        posterior = autoencoder.model.encode(frames).latent_dist
        latents = posterior.mean
        if config.sample_posterior:
            noise = torch.randn(posterior.mean.shape, generator=generator).to(device)
            latents = latents + posterior.std * noise
        reconstruction = autoencoder.model.decode(latents).sample
        error = (reconstruction - frames).abs()
        weighted = (foreground_weights(frames, config.foreground_weight) * error).mean()
        kl = posterior.kl().mean() / frames[0].numel()
        metrics = {"l1": float(error.mean().detach()), "kl": float(kl.detach())}
        return weighted + config.kl_weight * kl, metrics

    result = train_loop(
        autoencoder,
        compute_loss,
        run_dir,
        config.optim,
        config.loop,
        desc="autoencoder",
        info={"stage": "autoencoder"},
    )
    if not result.finished:
        return autoencoder
    autoencoder.eval()
    held_out_start = 10_000_000  # clips the training steps never reach
    mean, std = measure_latent_statistics(
        autoencoder, world, config.statistics_clips, held_out_start
    )
    autoencoder.set_latent_statistics(mean, std)
    autoencoder.model.save_pretrained(run_dir / "vae", safe_serialization=True)
    error = reconstruction_error(autoencoder, world, 64, held_out_start + config.statistics_clips)
    summary = {
        "steps": result.step,
        "cpu_seconds": round(result.cpu_seconds, 1),
        "held_out_l1_uint8": round(error, 3),
        "config": config_to_dict(config),
    }
    (run_dir / "vae" / "training.json").write_text(json.dumps(summary, indent=2))
    return autoencoder


@torch.no_grad()
def reconstruction_error(
    autoencoder: VideoAutoencoder, world: ShapesWorld, clips: int, first_index: int
) -> float:
    """Mean absolute error in uint8 units of encode -> decode over held-out clips."""
    video = np.stack([world[first_index + i].frames for i in range(clips)])
    pixels = uint8_to_pixels(video).to(device_of(autoencoder))
    decoded = autoencoder.decode(autoencoder.encode(pixels)).clamp(-1, 1)
    return float((decoded - pixels).abs().mean() * 127.5)

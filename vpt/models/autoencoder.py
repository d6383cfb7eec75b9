"""Video autoencoders: pixels <-> the normalised latents the transformer denoises.

Three codecs sit behind one interface:
- `PixelSpace`: no autoencoder at all; the transformer's patch embedding does the compression
  (pixel-space diffusion, as in JiT, Li & He 2025). The shapes world's default: a tiny learned
  autoencoder converged too slowly on a CPU to keep object colour and shape intact;
- `AutoencoderKL` (2D), applied frame by frame: the shapes world's small autoencoder, trained by
  vpt (`vpt.training.autoencoder`) so the transformer works on few latent tokens. It may also
  take a group of k consecutive frames stacked as 3k channels (`frames_per_latent`), which
  compresses time k-fold and puts each group's motion inside its latent frame; latent frames
  still decode independently, so chunked (streaming) decoding works unchanged;
- `AutoencoderKLWan` (causal 3D, 4x temporal and 8x spatial compression): what a real Wan2.1
  checkpoint brings.

Latents are normalised to roughly unit variance per channel: `(z - mean) / std` with the
statistics stored in the autoencoder's config (`latents_mean` / `latents_std`), as Wan does.

Shape legend: B batch, C channels (3 for pixels), F frames, H/W pixels, c/f/h/w latent sizes.
Pixels are floats in [-1, 1].
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import AutoencoderKL, AutoencoderKLWan
from torch import Tensor, nn


@dataclass(frozen=True)
class FrameAutoencoderConfig:
    """A tiny per-frame `AutoencoderKL` for a procedural world."""

    latent_channels: int = 8
    """Channels of the latent."""
    block_out_channels: tuple[int, ...] = (32, 64, 64)
    """Width of each encoder/decoder stage; each stage after the first halves the resolution."""
    layers_per_block: int = 1
    """Residual layers per stage."""
    norm_num_groups: int = 16
    """Group-norm groups (must divide every width)."""
    use_mid_attention: bool = False
    """Self-attention in the bottleneck (costly and unnecessary at tiny sizes)."""
    frames_per_latent: int = 1
    """Consecutive frames encoded together (stacked as channels) into one latent frame."""

    @property
    def spatial_factor(self) -> int:
        return 2 ** (len(self.block_out_channels) - 1)


def build_frame_autoencoder(config: FrameAutoencoderConfig) -> AutoencoderKL:
    """A fresh `AutoencoderKL` at the given tiny config (random weights, unit latent stats)."""
    stages = len(config.block_out_channels)
    if config.frames_per_latent < 1:
        raise ValueError(f"frames_per_latent must be >= 1, got {config.frames_per_latent}")
    return AutoencoderKL(
        in_channels=3 * config.frames_per_latent,
        out_channels=3 * config.frames_per_latent,
        down_block_types=("DownEncoderBlock2D",) * stages,
        up_block_types=("UpDecoderBlock2D",) * stages,
        block_out_channels=config.block_out_channels,
        layers_per_block=config.layers_per_block,
        latent_channels=config.latent_channels,
        norm_num_groups=config.norm_num_groups,
        mid_block_add_attention=config.use_mid_attention,
        latents_mean=(0.0,) * config.latent_channels,
        latents_std=(1.0,) * config.latent_channels,
        scaling_factor=1.0,
        force_upcast=False,
    )


PIXEL_SPACE_CLASS = "PixelSpace"


class PixelSpace(nn.Module):
    """The identity codec: "latents" are the pixels in [-1, 1] (3 channels, no downsampling)."""

    latents_mean: Tensor
    is_per_frame = True
    latent_channels = 3
    spatial_factor = 1
    temporal_factor = 1

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("latents_mean", torch.zeros(3), persistent=False)

    def latent_shape(self, frames: int, height: int, width: int) -> tuple[int, int, int, int]:
        return (3, frames, height, width)

    def encode(self, video_BCFHW: Tensor) -> Tensor:
        return video_BCFHW

    def encode_raw(self, video_BCFHW: Tensor, sample: bool = False) -> Tensor:
        return video_BCFHW

    def decode(self, latents_BCFHW: Tensor) -> Tensor:
        return latents_BCFHW

    def save_pretrained(self, folder: str | Path, **_: object) -> None:
        target = Path(folder)
        target.mkdir(parents=True, exist_ok=True)
        (target / "config.json").write_text(json.dumps({"_class_name": PIXEL_SPACE_CLASS}))


class VideoAutoencoder(nn.Module):
    """Encode `(B, 3, F, H, W)` pixels to normalised `(B, c, f, h, w)` latents and back."""

    latents_mean: Tensor
    latents_std: Tensor

    def __init__(self, model: AutoencoderKL | AutoencoderKLWan) -> None:
        super().__init__()
        if not isinstance(model, AutoencoderKL | AutoencoderKLWan):
            raise TypeError(f"unsupported autoencoder class {type(model).__name__}")
        self.model = model
        self.is_per_frame = isinstance(model, AutoencoderKL)
        channels = self.latent_channels
        mean = model.config.get("latents_mean") or [0.0] * channels
        std = model.config.get("latents_std") or [1.0] * channels
        self.register_buffer("latents_mean", torch.tensor(mean, dtype=torch.float32), False)
        self.register_buffer("latents_std", torch.tensor(std, dtype=torch.float32), False)

    @property
    def latent_channels(self) -> int:
        if self.is_per_frame:
            return int(self.model.config.latent_channels)
        return int(self.model.config.z_dim)

    @property
    def spatial_factor(self) -> int:
        if self.is_per_frame:
            return int(2 ** (len(self.model.config.block_out_channels) - 1))
        return int(self.model.config.scale_factor_spatial or 8)

    @property
    def temporal_factor(self) -> int:
        if self.is_per_frame:
            return int(self.model.config.in_channels) // 3
        return int(self.model.config.scale_factor_temporal or 4)

    def latent_shape(self, frames: int, height: int, width: int) -> tuple[int, int, int, int]:
        """`(c, f, h, w)` of the latent of a `frames x height x width` video."""
        if height % self.spatial_factor or width % self.spatial_factor:
            raise ValueError(
                f"video size {height}x{width} is not a multiple of the autoencoder's spatial "
                f"factor {self.spatial_factor}"
            )
        if self.is_per_frame:
            if frames % self.temporal_factor:
                raise ValueError(
                    f"{frames} frames: this autoencoder encodes groups of "
                    f"{self.temporal_factor} frames; use a multiple of {self.temporal_factor}"
                )
            latent_frames = frames // self.temporal_factor
        else:
            if (frames - 1) % self.temporal_factor:
                raise ValueError(
                    f"{frames} frames: a Wan autoencoder needs 1 + {self.temporal_factor}k frames"
                )
            latent_frames = 1 + (frames - 1) // self.temporal_factor
        return (
            self.latent_channels,
            latent_frames,
            height // self.spatial_factor,
            width // self.spatial_factor,
        )

    def _normalise(self, latents_BCFHW: Tensor) -> Tensor:
        shape = (1, -1, 1, 1, 1)
        return (latents_BCFHW - self.latents_mean.view(shape)) / self.latents_std.view(shape)

    def _denormalise(self, latents_BCFHW: Tensor) -> Tensor:
        shape = (1, -1, 1, 1, 1)
        return latents_BCFHW * self.latents_std.view(shape) + self.latents_mean.view(shape)

    def encode_raw(self, video_BCFHW: Tensor, sample: bool = False) -> Tensor:
        """Un-normalised latents (posterior mode, or a posterior sample when `sample`)."""
        if self.is_per_frame:
            batch, _, frames, _, _ = video_BCFHW.shape
            self.latent_shape(frames, *video_BCFHW.shape[-2:])  # checks the frame count
            groups = frames // self.temporal_factor
            dist = self.model.encode(self._stack_groups(video_BCFHW)).latent_dist
            latents = dist.sample() if sample else dist.mode()
            return latents.unflatten(0, (batch, groups)).transpose(1, 2)
        dist = self.model.encode(video_BCFHW).latent_dist
        return dist.sample() if sample else dist.mode()

    def encode(self, video_BCFHW: Tensor) -> Tensor:
        """Normalised latents (posterior mode) of pixels in [-1, 1]."""
        return self._normalise(self.encode_raw(video_BCFHW))

    def decode(self, latents_BCFHW: Tensor) -> Tensor:
        """Pixels in about [-1, 1] from normalised latents."""
        raw = self._denormalise(latents_BCFHW)
        if self.is_per_frame:
            batch, _, groups, _, _ = raw.shape
            images = self.model.decode(raw.transpose(1, 2).flatten(0, 1)).sample
            return self._unstack_groups(images, batch, groups)
        return self.model.decode(raw).sample

    def _stack_groups(self, video_BCFHW: Tensor) -> Tensor:
        """`(B, 3, F, H, W)` -> `(B * F/k, k * 3, H, W)`: each group of k frames as one image."""
        batch, channels, frames, height, width = video_BCFHW.shape
        k = self.temporal_factor
        grouped = video_BCFHW.reshape(batch, channels, frames // k, k, height, width)
        return grouped.permute(0, 2, 3, 1, 4, 5).reshape(-1, k * channels, height, width)

    def _unstack_groups(self, images_NCHW: Tensor, batch: int, groups: int) -> Tensor:
        """Inverse of `_stack_groups`: `(B * G, k * 3, H, W)` -> `(B, 3, G * k, H, W)`."""
        k = self.temporal_factor
        height, width = images_NCHW.shape[-2:]
        grouped = images_NCHW.reshape(batch, groups, k, -1, height, width)
        return grouped.permute(0, 3, 1, 2, 4, 5).reshape(batch, -1, groups * k, height, width)

    def set_latent_statistics(self, mean_C: Tensor, std_C: Tensor) -> None:
        """Store per-channel latent statistics (in the buffers and the saved config)."""
        self.latents_mean.copy_(mean_C)
        self.latents_std.copy_(std_C)
        self.model.register_to_config(
            latents_mean=[float(x) for x in mean_C], latents_std=[float(x) for x in std_C]
        )

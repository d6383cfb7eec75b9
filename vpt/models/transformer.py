"""The bidirectional flow-matching video transformer: diffusers' `WanTransformer3DModel`.

vpt builds it at tiny configs for the shapes world and loads the same class from a real Wan2.1
checkpoint folder. This module adds only the conventions around it:
- sigma in [0, 1] maps to Wan's timestep `1000 * sigma`;
- the network may be trained to predict the velocity `noise - x0` (Wan's own choice) or the
  clean sample x0 (JiT-style "x-prediction"); `predict_velocity` always returns a velocity, so
  samplers and losses never see the difference. With x-prediction,
  v = (x_sigma - x0_hat) / sigma, as in Li & He, "Back to Basics: Let Denoising Generative
  Models Denoise" (2025), eq. 6, with sigma clamped from below for stability;
- optionally, three coordinate channels (frame, row, column in [-1, 1]) are concatenated to the
  latent before the patch embedding, as Wan's image-to-video model concatenates its conditioning
  channels (`in_channels` = latent channels + 3). Wan's 3-D RoPE is relative only, so without
  them a token cannot know *when* in the clip it is, and a prompt's motion direction (a drift of
  the object over absolute time) cannot be expressed until sampling noise has broken the
  symmetry: small shapes-world models then take the direction from the seed and ignore the
  prompt (docs/generator.md).

Shape legend: B batch, C latent channels, F latent frames, H/W latent height/width,
L text tokens, D text width.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import torch
from diffusers import WanTransformer3DModel
from torch import Tensor

Prediction = Literal["velocity", "sample"]
TIMESTEP_SCALE = 1000.0
MIN_SIGMA_FOR_SAMPLE_PREDICTION = 0.05
POSITION_CHANNELS = 3
"""Coordinate channels (frame, row, column) appended by `append_position_channels`."""


@dataclass(frozen=True)
class TransformerConfig:
    """Size of a `WanTransformer3DModel` (the field names are diffusers' config keys)."""

    patch_size: tuple[int, int, int] = (1, 2, 2)
    """Patch over (frames, height, width) of the latent."""
    num_attention_heads: int = 4
    """Attention heads."""
    attention_head_dim: int = 32
    """Width of each head (Wan splits it between temporal and spatial RoPE)."""
    in_channels: int = 8
    """Latent channels in."""
    out_channels: int = 8
    """Latent channels out."""
    text_dim: int = 384
    """Width of the text encoder's token embeddings."""
    freq_dim: int = 64
    """Sinusoidal timestep embedding width."""
    ffn_dim: int = 512
    """Hidden width of each block's MLP."""
    num_layers: int = 4
    """Transformer blocks."""
    rope_max_seq_len: int = 64
    """Longest axis the rotary embedding covers."""


def build_transformer(config: TransformerConfig) -> WanTransformer3DModel:
    """A randomly initialised Wan transformer at `config`."""
    return WanTransformer3DModel(**asdict(config))


def transformer_config_of(model: WanTransformer3DModel) -> TransformerConfig:
    """The `TransformerConfig` a (possibly loaded) Wan transformer was built with."""
    fields = TransformerConfig.__dataclass_fields__
    values = {name: model.config[name] for name in fields}
    values["patch_size"] = tuple(values["patch_size"])
    return TransformerConfig(**values)


def append_position_channels(
    latents_BCFHW: Tensor, frame_offset: int = 0, reference_frames: int | None = None
) -> Tensor:
    """Latents with (frame, row, column) coordinate channels appended: `(B, C + 3, F, H, W)`.

    Rows and columns span [-1, 1]. Frame `f` of the clip (`frame_offset` + its index here) maps
    to `-1 + 2 f / (reference_frames - 1)`, so a chunk generated on its own gets the
    coordinates it has in the whole clip, and frames past `reference_frames` (the training
    length, default: this clip's length) continue the same line beyond 1.
    """
    batch, _, frames, height, width = latents_BCFHW.shape
    reference = reference_frames if reference_frames is not None else frame_offset + frames
    device, dtype = latents_BCFHW.device, latents_BCFHW.dtype

    def axis(count: int, offset: int, span: int) -> Tensor:
        index = torch.arange(offset, offset + count, device=device, dtype=dtype)
        return index * (2.0 / max(span - 1, 1)) - 1.0

    grid = torch.meshgrid(
        axis(frames, frame_offset, reference),
        axis(height, 0, height),
        axis(width, 0, width),
        indexing="ij",
    )
    coordinates_3FHW = torch.stack(grid)
    coordinates = coordinates_3FHW.unsqueeze(0).expand(batch, -1, -1, -1, -1)
    return torch.cat([latents_BCFHW, coordinates], dim=1)


def predict_velocity(
    model: WanTransformer3DModel,
    latents_BCFHW: Tensor,
    sigma: Tensor,
    text_BLD: Tensor,
    prediction: Prediction = "velocity",
    use_position_channels: bool = False,
) -> Tensor:
    """The network's velocity estimate at noise level `sigma`: one value per sample `(B,)`, or
    one per transformer frame `(B, T)` (T = latent frames / temporal patch; Diffusion-Forcing
    training, `vpt.training.frame_noise`), passed to diffusers as a per-token timestep
    `(B, N)` as Wan2.2 TI2V does."""
    batch, _, latent_frames, height, width = latents_BCFHW.shape
    patch_t, patch_h, patch_w = model.config.patch_size
    frames = latent_frames // patch_t
    if sigma.ndim == 1 and sigma.shape[0] == batch:
        timestep = sigma.to(latents_BCFHW.dtype) * TIMESTEP_SCALE
        sigma_B1F11 = sigma.view(-1, 1, 1, 1, 1)
    elif sigma.ndim == 2 and sigma.shape == (batch, frames):
        tokens_per_frame = (height // patch_h) * (width // patch_w)
        timestep = sigma.to(latents_BCFHW.dtype).repeat_interleave(tokens_per_frame, dim=1)
        timestep = timestep * TIMESTEP_SCALE
        sigma_B1F11 = sigma.repeat_interleave(patch_t, dim=1)[:, None, :, None, None]
    else:
        raise ValueError(
            f"sigma must have shape ({batch},) or ({batch}, {frames}) (one per transformer "
            f"frame), got {tuple(sigma.shape)}"
        )
    inputs = append_position_channels(latents_BCFHW) if use_position_channels else latents_BCFHW
    output = model(
        hidden_states=inputs,
        timestep=timestep,
        encoder_hidden_states=text_BLD,
        return_dict=False,
    )[0]
    if prediction == "velocity":
        return output
    sigma_B1F11 = sigma_B1F11.clamp(min=MIN_SIGMA_FOR_SAMPLE_PREDICTION)
    return (latents_BCFHW - output) / sigma_B1F11.to(output.dtype)


def count_parameters(model: torch.nn.Module) -> int:
    """Number of parameters."""
    return sum(parameter.numel() for parameter in model.parameters())

"""The bidirectional flow-matching video transformer: diffusers' `WanTransformer3DModel`.

vpt builds it at tiny configs for the shapes world and loads the same class from a real Wan2.1
checkpoint folder. This module adds only the conventions around it:
- sigma in [0, 1] maps to Wan's timestep `1000 * sigma`;
- the network may be trained to predict the velocity `noise - x0` (Wan's own choice) or the
  clean sample x0 (JiT-style "x-prediction"); `predict_velocity` always returns a velocity, so
  samplers and losses never see the difference. With x-prediction,
  v = (x_sigma - x0_hat) / sigma, as in Li & He, "Back to Basics: Let Denoising Generative
  Models Denoise" (2025), eq. 6, with sigma clamped from below for stability.

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


def predict_velocity(
    model: WanTransformer3DModel,
    latents_BCFHW: Tensor,
    sigma_B: Tensor,
    text_BLD: Tensor,
    prediction: Prediction = "velocity",
) -> Tensor:
    """The network's velocity estimate at noise level `sigma_B` (one value per sample)."""
    if sigma_B.ndim != 1 or sigma_B.shape[0] != latents_BCFHW.shape[0]:
        raise ValueError(
            f"sigma must have shape ({latents_BCFHW.shape[0]},), got {tuple(sigma_B.shape)}"
        )
    timestep_B = sigma_B.to(latents_BCFHW.dtype) * TIMESTEP_SCALE
    output = model(
        hidden_states=latents_BCFHW,
        timestep=timestep_B,
        encoder_hidden_states=text_BLD,
        return_dict=False,
    )[0]
    if prediction == "velocity":
        return output
    sigma = sigma_B.clamp(min=MIN_SIGMA_FOR_SAMPLE_PREDICTION).view(-1, 1, 1, 1, 1)
    return (latents_BCFHW - output) / sigma.to(output.dtype)


def count_parameters(model: torch.nn.Module) -> int:
    """Number of parameters."""
    return sum(parameter.numel() for parameter in model.parameters())

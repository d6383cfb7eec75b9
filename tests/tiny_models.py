"""Tiny real models for tests: the production classes at tiny configs, built in-process."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from diffusers import AutoencoderKLWan, WanTransformer3DModel

from vpt.generator import Generator, GeneratorConfig, SamplerSettings, VideoGeometry
from vpt.models.autoencoder import FrameAutoencoderConfig, VideoAutoencoder, build_frame_autoencoder
from vpt.models.text_encoder import TextEncoder, TextEncoderConfig
from vpt.models.transformer import TransformerConfig, build_transformer

TINY_AUTOENCODER = FrameAutoencoderConfig(
    latent_channels=4, block_out_channels=(8, 16), layers_per_block=1, norm_num_groups=4
)
TINY_TRANSFORMER = TransformerConfig(
    patch_size=(2, 2, 2),
    num_attention_heads=2,
    attention_head_dim=12,
    in_channels=4,
    out_channels=4,
    text_dim=384,
    freq_dim=16,
    ffn_dim=32,
    num_layers=1,
    rope_max_seq_len=32,
)
TINY_GEOMETRY = VideoGeometry(frames=4, height=16, width=16, fps=8)

_TEXT_ENCODER: TextEncoder | None = None


def minilm() -> TextEncoder:
    """The packaged MiniLM text encoder (loaded once per test session)."""
    global _TEXT_ENCODER
    if _TEXT_ENCODER is None:
        _TEXT_ENCODER = TextEncoder(TextEncoderConfig(max_length=16))
    return _TEXT_ENCODER


def tiny_generator(seed: int = 0, prediction: str = "velocity") -> Generator:
    torch.manual_seed(seed)
    config = GeneratorConfig(
        geometry=TINY_GEOMETRY,
        sampler=SamplerSettings(num_steps=3, shift=3.0, guidance_scale=2.0),
        prediction=prediction,  # type: ignore[arg-type]
        text_encoder=TextEncoderConfig(max_length=16),
    )
    return Generator(
        build_transformer(TINY_TRANSFORMER),
        VideoAutoencoder(build_frame_autoencoder(TINY_AUTOENCODER)),
        minilm(),
        config,
    ).eval()


def write_tiny_wan_pipeline(folder: Path) -> None:
    """A diffusers WanPipeline-layout folder with tiny random Wan2.1 components."""
    from transformers import AutoTokenizer, UMT5Config, UMT5EncoderModel

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(minilm().tokenizer.name_or_path)
    text_encoder = UMT5EncoderModel(
        UMT5Config(
            vocab_size=len(tokenizer),
            d_model=16,
            d_kv=8,
            d_ff=32,
            num_layers=1,
            num_heads=2,
        )
    )
    transformer = WanTransformer3DModel(
        patch_size=(1, 2, 2),
        num_attention_heads=2,
        attention_head_dim=12,
        in_channels=4,
        out_channels=4,
        text_dim=16,
        freq_dim=16,
        ffn_dim=32,
        num_layers=1,
        rope_max_seq_len=32,
    )
    vae = AutoencoderKLWan(
        base_dim=8,
        z_dim=4,
        dim_mult=[1, 1, 1, 1],
        num_res_blocks=1,
        temperal_downsample=[False, True, True],
        latents_mean=[0.1, -0.2, 0.0, 0.3],
        latents_std=[1.5, 0.7, 1.0, 2.0],
    )
    transformer.save_pretrained(folder / "transformer")
    vae.save_pretrained(folder / "vae")
    text_encoder.save_pretrained(folder / "text_encoder")
    tokenizer.save_pretrained(folder / "tokenizer")
    (folder / "scheduler").mkdir()
    (folder / "scheduler" / "scheduler_config.json").write_text(
        json.dumps({"_class_name": "UniPCMultistepScheduler", "flow_shift": 3.0})
    )
    (folder / "model_index.json").write_text(
        json.dumps(
            {
                "_class_name": "WanPipeline",
                "transformer": ["diffusers", "WanTransformer3DModel"],
                "vae": ["diffusers", "AutoencoderKLWan"],
                "text_encoder": ["transformers", "UMT5EncoderModel"],
                "tokenizer": ["transformers", "BertTokenizerFast"],
                "scheduler": ["diffusers", "UniPCMultistepScheduler"],
            }
        )
    )

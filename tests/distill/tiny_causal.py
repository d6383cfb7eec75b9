"""A tiny bidirectional Wan teacher and its causal student (real classes, tiny config)."""

from __future__ import annotations

import torch
from diffusers import WanTransformer3DModel

from vpt.models.causal_transformer import CausalWanTransformer
from vpt.models.kv_cache import AttentionWindow


def tiny_teacher(seed: int = 0, patch_t: int = 1) -> WanTransformer3DModel:
    torch.manual_seed(seed)
    teacher = WanTransformer3DModel(
        patch_size=(patch_t, 2, 2),
        num_attention_heads=2,
        attention_head_dim=12,
        in_channels=4,
        out_channels=4,
        text_dim=16,
        freq_dim=16,
        ffn_dim=32,
        num_layers=2,
        rope_max_seq_len=32,
    )
    with torch.no_grad():  # move every weight off its default init so nothing is trivially 0/1
        for parameter in teacher.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    return teacher.eval()


def tiny_student(window: AttentionWindow, seed: int = 0) -> CausalWanTransformer:
    return CausalWanTransformer.from_teacher(tiny_teacher(seed), window).eval()

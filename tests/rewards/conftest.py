"""Shared fixtures of the reward tests: tiny real reward models (the production classes at a tiny
size, random weights, saved and exported as `vpt train rewards` does) and world videos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.tiny_models import minilm
from vpt.rewards.learned import PromptEmbedder
from vpt.rewards.model_files import save_reward_model
from vpt.rewards.networks import (
    ClipEncoderConfig,
    RewardModelConfig,
    RewardModelKind,
    TextPooling,
    build_reward_model,
)
from vpt.rewards.onnx_export import export_onnx, write_triton_repository
from vpt.world import ShapesWorld, WorldConfig

TINY_ENCODER = ClipEncoderConfig(channels=(4, 8, 8), keypoints=1, temporal_width=8, output_dim=16)
TINY_CONFIGS = {
    "visual_quality": RewardModelConfig(
        encoder=TINY_ENCODER, level_names=("blur", "noise"), level_scales=(1.5, 25.0)
    ),
    "motion_quality": RewardModelConfig(
        encoder=TINY_ENCODER,
        level_names=("jitter", "flicker", "missing"),
        level_scales=(1.5, 0.25, 0.375),
    ),
    "text_alignment": RewardModelConfig(
        kind=RewardModelKind.TEXT_ALIGNMENT,
        encoder=TINY_ENCODER,
        embed_dim=8,
        text_pooling=TextPooling.ATTENTION,
        text_queries=2,
        text_heads=2,
        text_width=8,
    ),
}
TINY_MEAN_TEXT_ALIGNMENT = RewardModelConfig(
    kind=RewardModelKind.TEXT_ALIGNMENT, encoder=TINY_ENCODER, embed_dim=8
)
"""A text-alignment model reading the sentence embedding (the first shipped model's kind)."""


@pytest.fixture(scope="session")
def embedder() -> PromptEmbedder:
    return PromptEmbedder(minilm())


@pytest.fixture(scope="session")
def tiny_models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A reward models folder with the three learned rewards at a tiny size."""
    folder = tmp_path_factory.mktemp("reward_models")
    for seed, (name, config) in enumerate(TINY_CONFIGS.items()):
        torch.manual_seed(seed)
        model = build_reward_model(config).eval()
        save_reward_model(
            model,
            folder / name,
            name=name,
            version="tiny-test",
            recipe={},
            steps=0,
            metrics={},
            onnx_bytes=export_onnx(model),
        )
    return folder


@pytest.fixture(scope="session")
def triton_repository(tiny_models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("triton_repository")
    write_triton_repository(tiny_models_dir, folder)
    return folder


@pytest.fixture(scope="session")
def world_batch() -> tuple[np.ndarray, list[str]]:
    """Six raw world clips (some defective) and their captions."""
    batch = ShapesWorld(WorldConfig(defect_fraction=0.5), seed=11).batch(range(6))
    return batch.frames, list(batch.captions)

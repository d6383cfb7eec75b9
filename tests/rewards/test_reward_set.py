"""RewardSetConfig validation, the builder, per-reward scores and their combination."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vpt.checkpoint import CheckpointError
from vpt.config import ConfigError, config_from_dict
from vpt.rewards.learned import OnnxReward, PromptEmbedder, TorchReward
from vpt.rewards.reward_set import (
    RewardBackend,
    RewardSetConfig,
    build_reward_set,
)
from vpt.rewards.structural import StructuralReward


def test_builder_returns_the_configured_rewards_on_the_configured_backend(
    tiny_models_dir: Path, embedder: PromptEmbedder, world_batch: tuple[np.ndarray, list[str]]
) -> None:
    videos, prompts = world_batch
    weights = {"structural": 1.0, "motion_quality": 0.5, "text_alignment": 2.0}
    for backend, adapter in ((RewardBackend.ONNX, OnnxReward), (RewardBackend.TORCH, TorchReward)):
        config = RewardSetConfig(weights=weights, backend=backend, models_dir=str(tiny_models_dir))
        rewards = build_reward_set(config, embedder)
        assert rewards.names == ("text_alignment", "motion_quality", "structural")
        assert isinstance(rewards.rewards[0], adapter)
        assert isinstance(rewards.rewards[2], StructuralReward)
        scores = rewards.score(videos, prompts)
        assert {name: s.shape for name, s in scores.items()} == {n: (6,) for n in weights}
        advantages = rewards.combine(scores, np.array([0, 0, 0, 1, 1, 1]))
        assert advantages.shape == (6,)
        np.testing.assert_allclose([advantages[:3].mean(), advantages[3:].mean()], 0, atol=1e-9)


def test_combination_weights_the_group_normalised_scores(tiny_models_dir: Path) -> None:
    config = RewardSetConfig(
        weights={"structural": 2.0, "visual_quality": -1.0}, models_dir=str(tiny_models_dir)
    )
    rewards = build_reward_set(config)
    scores = {
        "structural": np.array([1.0, 0.0, 0.5, 0.5]),
        "visual_quality": np.array([0.2, 0.4, 0.9, 0.1]),
    }
    expected = 2.0 * np.array([1.0, -1.0, 0.0, 0.0]) - np.array([-1.0, 1.0, 1.0, -1.0])
    np.testing.assert_allclose(rewards.combine(scores, np.array([0, 0, 1, 1])), expected)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"weights": {"aesthetics": 1.0}}, "unknown reward.*aesthetics"),
        ({"weights": {}}, "weights is empty"),
        ({"weights": {"structural": float("nan")}}, "must be finite"),
        ({"backend": "tensorrt"}, r"config\.backend.*not a valid RewardBackend"),
        ({"std_scope": "batch"}, r"config\.std_scope"),
        ({"triton": {"timeout_s": 0}}, r"config\.triton.*timeout_s must be > 0"),
        ({"triton": {"url": "localhost"}}, "host:port"),
        ({"triton": {"max_retries": -1}}, "max_retries must be >= 0"),
    ],
)
def test_bad_config_names_the_field(data: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        config_from_dict(RewardSetConfig, data)


def test_missing_models_folder_and_triton_backend_are_explained(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="vpt train rewards"):
        build_reward_set(RewardSetConfig(models_dir=str(tmp_path / "none")))
    (tmp_path / "visual_quality").mkdir()
    config = RewardSetConfig(weights={"visual_quality": 1.0}, models_dir=str(tmp_path))
    with pytest.raises(CheckpointError, match=r"no manifest\.json"):
        build_reward_set(config)
    triton = RewardSetConfig(weights={"visual_quality": 1.0}, backend=RewardBackend.TRITON)
    with pytest.raises(ValueError, match=r"online_rl\.triton_reward\.build_triton_reward_set"):
        build_reward_set(triton)

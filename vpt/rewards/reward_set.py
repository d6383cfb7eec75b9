"""The configured set of training rewards: which rewards, their weights, which backend.

    config = RewardSetConfig(weights={"text_alignment": 1.0, "visual_quality": 0.5})
    rewards = build_reward_set(config)
    scores = rewards.score(videos_BFHWC, prompts)       # {name: (B,) float32}
    advantages = rewards.combine(scores, group_ids)     # vpt.rewards.base.combine_rewards

Backends of the learned rewards: `onnx` (onnxruntime in-process, the default) or `torch`
(the same weights in torch). `triton` calls a Triton server over gRPC; that client lives in
`online_rl.triton_reward` (the core package imports no network client) and builds the same
`RewardSet`. The structural reward is rule-based and always runs in-process.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

import numpy as np

from vpt.rewards.base import Reward, combine_rewards
from vpt.rewards.learned import OnnxReward, PromptEmbedder, TorchReward
from vpt.rewards.model_files import PACKAGED, load_reward_model, resolve_models_dir
from vpt.rewards.structural import StructuralReward


class RewardName(StrEnum):
    """The training rewards vpt provides."""

    TEXT_ALIGNMENT = "text_alignment"
    VISUAL_QUALITY = "visual_quality"
    MOTION_QUALITY = "motion_quality"
    STRUCTURAL = "structural"


LEARNED_REWARDS = (
    RewardName.TEXT_ALIGNMENT,
    RewardName.VISUAL_QUALITY,
    RewardName.MOTION_QUALITY,
)
"""The rewards that are learned models (exported to ONNX, servable by Triton)."""


class RewardBackend(StrEnum):
    """Where the learned rewards run."""

    ONNX = "onnx"
    TORCH = "torch"
    TRITON = "triton"


@dataclass(frozen=True)
class TritonEndpointConfig:
    """How the `triton` backend reaches its server (used by `online_rl.triton_reward`)."""

    url: str = "127.0.0.1:8001"
    """host:port of the Triton gRPC endpoint."""
    timeout_s: float = 10.0
    """Deadline of one inference call, seconds."""
    max_retries: int = 2
    """Further attempts after a call that timed out or found the server unavailable."""
    retry_backoff_s: float = 0.2
    """Pause before the first retry, doubled before each further one, seconds."""

    def __post_init__(self) -> None:
        if not self.url or ":" not in self.url:
            raise ValueError(f"triton.url must be host:port, got {self.url!r}")
        if not self.timeout_s > 0:
            raise ValueError(f"triton.timeout_s must be > 0, got {self.timeout_s}")
        if self.max_retries < 0:
            raise ValueError(f"triton.max_retries must be >= 0, got {self.max_retries}")
        if self.retry_backoff_s < 0:
            raise ValueError(f"triton.retry_backoff_s must be >= 0, got {self.retry_backoff_s}")


def _default_weights() -> dict[str, float]:
    return {name.value: 1.0 for name in RewardName}


@dataclass(frozen=True)
class RewardSetConfig:
    """Which rewards score rollouts, how they are weighted and where the learned ones run."""

    weights: dict[str, float] = field(default_factory=_default_weights)
    """Reward name -> weight of its group-normalised score; the rewards used are these names."""
    backend: RewardBackend = RewardBackend.ONNX
    """Where the learned rewards run: onnx (default), torch, or triton (online_rl only)."""
    models_dir: str = PACKAGED
    """Folder with one reward model folder per learned reward; `packaged` = the shipped ones."""
    std_scope: Literal["group", "global"] = "group"
    """Std of the per-reward normalisation: within each prompt's group, or over the batch."""
    triton: TritonEndpointConfig = field(default_factory=TritonEndpointConfig)
    """The Triton endpoint, for backend `triton`."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "backend", RewardBackend(self.backend))
        if not self.weights:
            raise ValueError("weights is empty; name at least one reward, e.g. structural: 1.0")
        known = {name.value for name in RewardName}
        unknown = sorted(set(self.weights) - known)
        if unknown:
            raise ValueError(
                f"weights name unknown reward(s) {', '.join(unknown)}; known: "
                f"{', '.join(sorted(known))}"
            )
        for name, weight in self.weights.items():
            if isinstance(weight, bool) or not isinstance(weight, int | float):
                raise ValueError(f"weights.{name} must be a number, got {weight!r}")
            if not math.isfinite(weight):
                raise ValueError(f"weights.{name} must be finite, got {weight}")

    @property
    def names(self) -> tuple[RewardName, ...]:
        """The rewards used, in `RewardName` order."""
        return tuple(name for name in RewardName if name.value in self.weights)


class RewardSet:
    """The configured rewards: score a batch with each, then combine at the advantage level."""

    def __init__(self, rewards: Sequence[Reward], config: RewardSetConfig) -> None:
        names = [reward.name for reward in rewards]
        if sorted(names) != sorted(config.weights):
            raise ValueError(
                f"rewards {names} do not match the configured {sorted(config.weights)}"
            )
        self.rewards = tuple(rewards)
        self.config = config

    @property
    def names(self) -> tuple[str, ...]:
        """Names of the rewards, in scoring order."""
        return tuple(reward.name for reward in self.rewards)

    def score(self, videos_BFHWC: np.ndarray, prompts: Sequence[str]) -> dict[str, np.ndarray]:
        """Reward name -> float32 `(B,)` scores of every configured reward."""
        return {reward.name: reward.score(videos_BFHWC, prompts) for reward in self.rewards}

    def combine(self, scores: Mapping[str, np.ndarray], group_ids_N: np.ndarray) -> np.ndarray:
        """Weighted sum of the group-normalised scores (DanceGRPO's advantage aggregation)."""
        return combine_rewards(
            scores, group_ids_N, self.config.weights, std_scope=self.config.std_scope
        )


def build_learned_reward(
    name: RewardName,
    config: RewardSetConfig,
    embedder: PromptEmbedder | None = None,
) -> Reward:
    """The in-process (onnx or torch) adapter of learned reward `name`."""
    if config.backend is RewardBackend.TRITON:
        raise ValueError(
            "backend 'triton' calls a network service; build it with "
            "online_rl.triton_reward.build_triton_reward_set (vpt itself runs onnx or torch)"
        )
    loaded = load_reward_model(resolve_models_dir(config.models_dir) / name.value)
    if config.backend is RewardBackend.TORCH:
        return TorchReward(loaded, embedder)
    return OnnxReward.from_loaded(loaded, embedder)


def build_reward_set(config: RewardSetConfig, embedder: PromptEmbedder | None = None) -> RewardSet:
    """The rewards `config` names, with learned ones on its backend (onnx or torch)."""
    rewards: list[Reward] = []
    for name in config.names:
        if name is RewardName.STRUCTURAL:
            rewards.append(StructuralReward())
        else:
            rewards.append(build_learned_reward(name, config, embedder))
    return RewardSet(rewards, config)

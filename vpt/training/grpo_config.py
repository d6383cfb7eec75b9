"""The recipe of `vpt train grpo`: one typed place for every knob of the GRPO stage, and the
training prompt pool (captions of the world's non-held-out attribute combinations).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

import numpy as np

import vpt
from vpt.rewards.reward_set import RewardSetConfig
from vpt.training.grpo import PolicyLossConfig
from vpt.training.loop import LoopConfig, OptimConfig
from vpt.training.rollout import RolloutConfig
from vpt.world.captions import detailed_caption, short_caption
from vpt.world.splits import is_held_out
from vpt.world.vocabulary import all_attribute_combinations

GRPOMode = Literal["flash", "flow_grpo", "no_tgr"]
FineTuning = Literal["lora", "full"]
PromptRegister = Literal["short", "detailed", "mixed"]

SHIPPED_MODEL = Path(vpt.__file__).resolve().parent / "assets" / "models" / "shapes-default"
"""The shipped SFT model, the default starting point."""


@dataclass(frozen=True)
class LoRAConfig:
    """Low-rank adapters (peft) on the transformer's attention projections."""

    rank: int = 16
    """Adapter rank r."""
    alpha: int = 32
    """Scaling alpha (the update is alpha / r * B A)."""
    target_modules: tuple[str, ...] = ("to_q", "to_k", "to_v", "to_out.0")
    """Names of the linear layers that get adapters."""


@dataclass(frozen=True)
class PromptPoolConfig:
    """Training prompts: captions of the world's non-held-out attribute combinations."""

    count: int = 512
    """Prompts in the pool."""
    seed: int = 0
    """Seed of the pool's combinations and wording."""
    register: PromptRegister = "mixed"
    """Caption style: short user-style, detailed, or half of each."""


@dataclass(frozen=True)
class GRPOConfig:
    """A run of `vpt train grpo`."""

    init_from: str | None = None
    """SFT checkpoint to start from (None: the shipped default model)."""
    mode: GRPOMode = "flash"
    """flash (one SDE step + TGR), no_tgr (ablation) or flow_grpo (SDE at every step)."""
    prompts_per_step: int = 4
    """Prompt groups per step (global, over all ranks)."""
    prompts: PromptPoolConfig = field(default_factory=PromptPoolConfig)
    """Where prompts come from."""
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    """Group size, sampler, SDE noise, prefix sharing."""
    rewards: RewardSetConfig = field(
        default_factory=lambda: RewardSetConfig(weights={"structural": 1.0}, std_scope="global")
    )
    """Rewards, their weights in the advantage, std scope of the normalisation, backend."""
    advantage_clip: float = 5.0
    """Clamp advantages to [-clip, clip] (Flash-GRPO 5)."""
    loss: PolicyLossConfig = field(default_factory=PolicyLossConfig)
    """PPO clip range and KL weight."""
    finetune: FineTuning = "lora"
    """Train LoRA adapters (merged into the saved model) or all transformer weights."""
    lora: LoRAConfig = field(default_factory=LoRAConfig)
    """Adapters, when finetune is lora."""
    updates_per_step: int = 1
    """Optimizer steps per rollout batch, each on a slice of the rollouts."""
    micro_batch: int = 0
    """Rows per forward/backward pass (gradient accumulation); 0 = the whole slice at once."""
    optim: OptimConfig = field(
        default_factory=lambda: OptimConfig(
            lr=1e-4,
            betas=(0.9, 0.999),
            weight_decay=1e-4,
            warmup_steps=0,
            decay="constant",
            grad_clip=1.0,
            ema_decay=0.9,
        )
    )
    """AdamW, schedule over GRPO steps, gradient clipping, EMA."""
    loop: LoopConfig = field(default_factory=lambda: LoopConfig(steps=100, log_every=1))
    """Steps (rollout batches), seed, logging and saving cadence."""
    version: str | None = None
    """Version of the produced checkpoint (default: derived from its content)."""

    def __post_init__(self) -> None:
        if self.mode not in get_args(GRPOMode):
            raise ValueError(f"mode must be one of {get_args(GRPOMode)}, got {self.mode!r}")
        if self.finetune not in get_args(FineTuning):
            raise ValueError(
                f"finetune must be one of {get_args(FineTuning)}, got {self.finetune!r}"
            )
        if self.prompts_per_step < 1:
            raise ValueError(f"prompts_per_step must be >= 1, got {self.prompts_per_step}")
        if self.updates_per_step < 1:
            raise ValueError(f"updates_per_step must be >= 1, got {self.updates_per_step}")
        if self.micro_batch < 0:
            raise ValueError(f"micro_batch must be >= 0, got {self.micro_batch}")
        if not self.advantage_clip > 0:
            raise ValueError(f"advantage_clip must be > 0, got {self.advantage_clip}")


def training_prompts(config: PromptPoolConfig) -> tuple[str, ...]:
    """The prompt pool: captions of combinations that training may see (never held-out ones)."""
    if config.count < 1:
        raise ValueError(f"prompts.count must be >= 1, got {config.count}")
    combinations = [a for a in all_attribute_combinations() if not is_held_out(a)]
    rng = np.random.default_rng(config.seed)
    order = rng.permutation(len(combinations))
    prompts = []
    for i in range(config.count):
        attributes = combinations[int(order[i % len(order)])]
        is_detailed = config.register == "detailed" or (
            config.register == "mixed" and rng.random() < 0.5
        )
        caption = (
            detailed_caption(attributes, rng) if is_detailed else short_caption(attributes, rng)
        )
        prompts.append(caption.text)
    return tuple(prompts)

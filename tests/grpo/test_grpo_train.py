"""GRPO runs on a tiny real model with a known-answer reward: the reward rises, runs are
reproducible and resume exactly, the checkpoint records its SFT parent, LoRA merges, KL works."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from tests.grpo.brightness import RedBrightness
from tests.grpo.conftest import TINY_SFT_VERSION
from vpt.checkpoint import load_generator
from vpt.rewards.reward_set import RewardSetConfig
from vpt.training.grpo import PolicyLossConfig
from vpt.training.grpo_config import GRPOConfig, LoRAConfig, training_prompts
from vpt.training.grpo_train import run_grpo
from vpt.training.loop import LoopConfig, OptimConfig
from vpt.training.rollout import RolloutConfig
from vpt.world.parser import parse_prompt
from vpt.world.splits import is_held_out
from vpt.world.vocabulary import Attributes

REWARDS = {"visual_quality": RedBrightness()}
TIMING_KEYS = {
    "time",
    "cpu_seconds",
    "rollout_seconds",
    "update_seconds",
    "rollout_cpu_seconds",
    "update_cpu_seconds",
}


def tiny_config(sft: Path, steps: int, **changes: Any) -> GRPOConfig:
    config = GRPOConfig(
        init_from=str(sft),
        mode="flash",
        prompts_per_step=2,
        rollout=RolloutConfig(group_size=4, num_steps=6, guidance_scale=2.0),
        rewards=RewardSetConfig(weights={"visual_quality": 1.0}, std_scope="global"),
        finetune="full",
        optim=OptimConfig(
            lr=1e-2,
            betas=(0.9, 0.999),
            weight_decay=0.0,
            warmup_steps=0,
            decay="constant",
            grad_clip=1.0,
            ema_decay=0.0,
        ),
        loop=LoopConfig(steps=steps, seed=0, log_every=1, save_every=3),
    )
    return replace(config, **changes)


def metrics_of(run_dir: Path) -> list[dict[str, Any]]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in TIMING_KEYS} for line in lines]


def test_flash_grpo_raises_the_reward_and_saves_a_grpo_checkpoint(
    sft_checkpoint: Path, tmp_path: Path
) -> None:
    result = run_grpo(tiny_config(sft_checkpoint, steps=40), tmp_path, REWARDS)
    assert result.finished and result.checkpoint is not None
    rewards = [m["reward"] for m in metrics_of(tmp_path)]
    assert len(rewards) == 40
    assert np.mean(rewards[-10:]) > np.mean(rewards[:10]) + 0.03
    # One update per rollout batch: every ratio is exactly on-policy.
    assert all(m["ratio_max_deviation"] <= 1e-6 for m in metrics_of(tmp_path))
    loaded = load_generator(result.checkpoint)
    assert loaded.manifest is not None
    assert loaded.manifest.parent == TINY_SFT_VERSION
    assert loaded.manifest.stage == "grpo"
    assert loaded.manifest.steps == 40
    assert loaded.manifest.recipe["mode"] == "flash"


def test_same_seed_same_run_and_exact_resume(sft_checkpoint: Path, tmp_path: Path) -> None:
    config = tiny_config(
        sft_checkpoint,
        steps=6,
        finetune="lora",
        lora=LoRAConfig(rank=2, alpha=4),
        updates_per_step=2,
        optim=replace(tiny_config(sft_checkpoint, 1).optim, ema_decay=0.5),
    )
    run_grpo(config, tmp_path / "a", REWARDS)
    run_grpo(config, tmp_path / "b", REWARDS)
    interrupted = replace(config, loop=replace(config.loop, stop_after=4))
    first = run_grpo(interrupted, tmp_path / "c", REWARDS)
    assert not first.finished and first.step == 4
    run_grpo(config, tmp_path / "c", REWARDS)  # resumes from the state saved at step 3
    assert metrics_of(tmp_path / "a") == metrics_of(tmp_path / "b") == metrics_of(tmp_path / "c")
    # The second update of a step is off-policy: its ratios move away from 1.
    assert max(m["ratio_max_deviation"] for m in metrics_of(tmp_path / "a")) > 0
    weights = [
        load_file(
            tmp_path / run / "checkpoint" / "transformer" / "diffusion_pytorch_model.safetensors"
        )
        for run in "abc"
    ]
    for name, value in weights[0].items():
        assert torch.equal(value, weights[1][name]) and torch.equal(value, weights[2][name])


def test_lora_run_saves_merged_weights_that_moved(sft_checkpoint: Path, tmp_path: Path) -> None:
    config = tiny_config(sft_checkpoint, steps=3, finetune="lora", lora=LoRAConfig(rank=2, alpha=4))
    result = run_grpo(config, tmp_path, REWARDS)
    assert result.checkpoint is not None
    file = "transformer/diffusion_pytorch_model.safetensors"
    trained, base = load_file(result.checkpoint / file), load_file(sft_checkpoint / file)
    assert sorted(trained) == sorted(base)
    changed = [name for name in base if not torch.equal(trained[name], base[name])]
    assert changed and all(".attn" in name for name in changed)


@pytest.mark.parametrize("finetune", ["lora", "full"])
def test_kl_to_the_reference_starts_at_zero_then_grows(
    sft_checkpoint: Path, tmp_path: Path, finetune: str
) -> None:
    config = tiny_config(
        sft_checkpoint,
        steps=3,
        finetune=finetune,
        lora=LoRAConfig(rank=2, alpha=4),
        loss=PolicyLossConfig(clip_range=1e-3, kl_weight=0.1),
    )
    run_grpo(config, tmp_path, REWARDS)
    kls = [m["kl"] for m in metrics_of(tmp_path)]
    assert kls[0] == 0.0
    assert kls[-1] > 0.0


def test_modes_weight_and_store_as_specified(sft_checkpoint: Path, tmp_path: Path) -> None:
    for mode in ("flash", "no_tgr", "flow_grpo"):
        run_grpo(tiny_config(sft_checkpoint, steps=2, mode=mode), tmp_path / mode, REWARDS)
    flash, no_tgr, flow = (metrics_of(tmp_path / m) for m in ("flash", "no_tgr", "flow_grpo"))
    # Same seed: the same prompts and exploration steps in every mode.
    assert [m["branch_steps"] for m in flash] == [m["branch_steps"] for m in no_tgr]
    unequal_k = [m for m in flash if len(set(m["branch_steps"])) > 1]
    assert unequal_k and all(m["tgr_weight_min"] < 1 < m["tgr_weight_max"] for m in unequal_k)
    assert all(m["tgr_weight_min"] == m["tgr_weight_max"] == 1 for m in no_tgr + flow)
    assert flash[0]["reward"] == no_tgr[0]["reward"]  # identical first rollouts


def test_training_prompts_avoid_held_out_combinations() -> None:
    config = GRPOConfig().prompts
    prompts = training_prompts(config)
    assert len(prompts) == config.count and len(set(prompts)) > config.count // 2
    for prompt in prompts[:50]:
        stated = parse_prompt(prompt).attributes
        if all(getattr(stated, name) is not None for name in Attributes.__dataclass_fields__):
            full = Attributes(**{n: getattr(stated, n) for n in Attributes.__dataclass_fields__})
            assert not is_held_out(full)


def test_bad_inputs_are_refused(sft_checkpoint: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not given"):
        run_grpo(tiny_config(sft_checkpoint, steps=1), tmp_path, {})
    with pytest.raises(ValueError, match="mode"):
        GRPOConfig(mode="dance")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="prompts_per_step"):
        GRPOConfig(prompts_per_step=0)
    run_grpo(tiny_config(sft_checkpoint, steps=1), tmp_path, REWARDS)
    with pytest.raises(ValueError, match="different recipe"):
        run_grpo(tiny_config(sft_checkpoint, steps=1, mode="no_tgr"), tmp_path, REWARDS)

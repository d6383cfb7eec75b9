"""GRPO cost and gradient balance: `flash` vs `flow_grpo` time per policy update, and the spread
of gradient norms across exploration timesteps with (`flash`) and without (`no_tgr`) temporal
gradient rectification.

    python benchmarks/grpo_cost.py                      # the shipped model, 1 thread
    python benchmarks/grpo_cost.py --repeats 5 --group-size 8 --prompts 2

1. Cost, side by side. For each repeat both modes run one GRPO step on the same prompts and the
   same exploration steps k (`plan_step` of the same seed and step): rollouts (flash: ODE, one
   SDE step at k, ODE, the prefix shared within a group; flow_grpo: an SDE step at every step),
   the structural reward, then one policy update (forward + backward of the clipped loss at
   every stored transition, AdamW step). Advantages are fixed standard-normal draws centred per
   group, so both modes update on every rollout whatever the reward says. Times are process CPU
   seconds on one thread (robust on a shared machine) and wall seconds; medians over repeats.
2. Gradient balance. The same groups (same prompts, noise and advantages) explore at every
   candidate k in turn; for each k the norm of the loss gradient over all transformer weights
   (full fine-tuning) is measured with weight 1
   (`no_tgr`) and with the TGR weight (1/c_k) / mean over k of (1/c) (`flash`). Spread = max/min
   over k, and the coefficient of variation.

Writes docs/results/grpo_cost.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vpt.checkpoint import load_generator  # noqa: E402
from vpt.config import config_to_dict, load_config_file  # noqa: E402
from vpt.rewards.structural import StructuralReward  # noqa: E402
from vpt.training.distributed import Ranks  # noqa: E402
from vpt.training.grpo import tgr_weights  # noqa: E402
from vpt.training.grpo_config import (  # noqa: E402
    SHIPPED_MODEL,
    GRPOConfig,
    GRPOMode,
    training_prompts,
)
from vpt.training.grpo_train import (  # noqa: E402
    EXPLORATION,
    Policy,
    UpdateStats,
    accumulate_policy_gradient,
    plan_step,
    prepare_policy,
    score_videos,
)
from vpt.training.rollout import RolloutBatch, RolloutRequest, run_rollouts  # noqa: E402


def centred_advantages(rows: int, group_size: int, seed: int) -> torch.Tensor:
    """Standard-normal advantages, centred within each group of `group_size` rows."""
    draws = np.random.default_rng(seed).standard_normal(rows).reshape(-1, group_size)
    return torch.from_numpy((draws - draws.mean(axis=1, keepdims=True)).ravel()).float()


def update_once(
    policy: Policy,
    optimizer: torch.optim.Optimizer,
    batch: RolloutBatch,
    advantages: torch.Tensor,
    weights: torch.Tensor,
    config: GRPOConfig,
) -> float:
    """One policy update on every row of `batch`; returns the gradient norm."""
    optimizer.zero_grad(set_to_none=True)
    rows = np.arange(len(batch.prompts))
    accumulate_policy_gradient(
        policy, batch, rows, advantages, weights, config, Ranks(), UpdateStats()
    )
    parameters = [p for p in policy.generator.transformer.parameters() if p.requires_grad]
    norm = float(torch.nn.utils.clip_grad_norm_(parameters, config.optim.grad_clip))
    optimizer.step()
    return norm


def timed(function: Any) -> tuple[Any, float, float]:
    """(result, cpu seconds, wall seconds) of calling `function()`."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = function()
    return result, time.process_time() - cpu, time.perf_counter() - wall


def measure_cost(config: GRPOConfig, model: str, repeats: int) -> dict[str, Any]:
    pool = training_prompts(config.prompts)
    modes: tuple[GRPOMode, ...] = ("flash", "flow_grpo")
    runs: dict[str, Any] = {}
    for mode in modes:
        mode_config = replace(config, mode=mode)
        policy = prepare_policy(load_generator(model).generator, mode_config)
        parameters = [p for p in policy.generator.transformer.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(parameters, lr=config.optim.lr)
        runs[mode] = (mode_config, policy, optimizer)
    reward = {"structural": StructuralReward()}
    records: dict[str, list[dict[str, float]]] = {mode: [] for mode in modes}
    for repeat in range(repeats):
        for mode in modes:  # interleaved, so machine load affects both alike
            mode_config, policy, optimizer = runs[mode]
            plan = plan_step(mode_config, pool, repeat, Ranks())
            batch, rollout_cpu, rollout_wall = timed(
                lambda mode_config=mode_config, policy=policy, plan=plan: run_rollouts(
                    policy.generator,
                    plan.request,
                    mode_config.rollout,
                    EXPLORATION[mode_config.mode],
                )
            )
            _, reward_cpu, reward_wall = timed(lambda batch=batch: score_videos(reward, batch))
            advantages = centred_advantages(len(batch.prompts), config.rollout.group_size, repeat)
            weights = (
                tgr_weights(batch.gradient_scale[:, 0])[:, None]
                if mode == "flash"
                else torch.ones_like(batch.gradient_scale)
            )
            _, update_cpu, update_wall = timed(
                lambda m=mode_config, p=policy, o=optimizer, b=batch, a=advantages, w=weights: (
                    update_once(p, o, b, a, w, m)
                )
            )
            records[mode].append(
                {
                    "rollout_cpu_s": rollout_cpu,
                    "reward_cpu_s": reward_cpu,
                    "update_cpu_s": update_cpu,
                    "step_cpu_s": rollout_cpu + reward_cpu + update_cpu,
                    "rollout_wall_s": rollout_wall,
                    "reward_wall_s": reward_wall,
                    "update_wall_s": update_wall,
                    "step_wall_s": rollout_wall + reward_wall + update_wall,
                    "trained_transitions": float(batch.x.shape[0] * batch.x.shape[1]),
                    "velocity_evaluations": float(batch.velocity_evaluations),
                }
            )
            print(f"cost repeat {repeat} {mode}: {json.dumps(records[mode][-1])}", flush=True)
    medians = {
        mode: {key: statistics.median(r[key] for r in records[mode]) for key in records[mode][0]}
        for mode in modes
    }
    return {
        "repeats": repeats,
        "median": {m: {k: round(v, 3) for k, v in medians[m].items()} for m in modes},
        "flow_grpo_over_flash": {
            key: round(medians["flow_grpo"][key] / medians["flash"][key], 2)
            for key in ("update_cpu_s", "step_cpu_s", "update_wall_s", "step_wall_s")
        },
        "runs": records,
    }


def measure_gradient_balance(config: GRPOConfig, model: str) -> dict[str, Any]:
    pool = training_prompts(config.prompts)
    # Full fine-tuning: the norm is over every transformer weight (LoRA's B starts at 0, which
    # would leave its A matrices without gradient at the first step).
    flash_config = replace(config, mode="flash", finetune="full")
    policy = prepare_policy(load_generator(model).generator, flash_config)
    transformer = policy.generator.transformer
    parameters = [p for p in transformer.parameters() if p.requires_grad]
    plan = plan_step(flash_config, pool, 0, Ranks())
    advantages = centred_advantages(len(plan.request.prompts), config.rollout.group_size, 0)
    candidates = range(max(1, int(config.rollout.num_steps * config.rollout.branch_fraction)))
    raw: list[dict[str, float]] = []
    for k in candidates:
        request = RolloutRequest(
            prompts=plan.request.prompts,
            group_ids=plan.request.group_ids,
            branch_steps=torch.full_like(plan.request.branch_steps, k),
            noise_seeds=plan.request.noise_seeds,
            sde_seeds=plan.request.sde_seeds,
        )
        batch = run_rollouts(policy.generator, request, config.rollout, "single_step")
        for parameter in parameters:
            parameter.grad = None
        accumulate_policy_gradient(
            policy,
            batch,
            np.arange(len(batch.prompts)),
            advantages,
            torch.ones_like(batch.gradient_scale),
            flash_config,
            Ranks(),
            UpdateStats(),
        )
        norm = float(torch.sqrt(sum((p.grad.double() ** 2).sum() for p in parameters)))  # type: ignore[union-attr,misc]
        raw.append(
            {
                "k": k,
                "sigma": float(batch.sigma[0, 0]),
                "gradient_scale_c": float(batch.gradient_scale[0, 0]),
                "grad_norm_no_tgr": norm,
            }
        )
        print(f"balance k={k}: {json.dumps(raw[-1])}", flush=True)
    scales = torch.tensor([r["gradient_scale_c"] for r in raw])
    weights = tgr_weights(scales)  # mean of 1/c over the candidate steps
    for record, weight in zip(raw, weights.tolist(), strict=True):
        record["tgr_weight"] = weight
        # The TGR weight is constant within a group, so the weighted loss's gradient is exactly
        # weight * the unweighted one.
        record["grad_norm_flash"] = weight * record["grad_norm_no_tgr"]

    def spread(key: str) -> dict[str, float]:
        values = np.array([r[key] for r in raw])
        return {
            "max_over_min": round(float(values.max() / values.min()), 3),
            "coefficient_of_variation": round(float(values.std() / values.mean()), 3),
        }

    return {
        "per_k": raw,
        "spread_no_tgr": spread("grad_norm_no_tgr"),
        "spread_flash": spread("grad_norm_flash"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default=str(SHIPPED_MODEL))
    parser.add_argument("--recipe", default=str(ROOT / "recipes" / "shapes_grpo.yaml"))
    parser.add_argument("--prompts", type=int, default=2, help="prompt groups per step")
    parser.add_argument("--group-size", type=int, default=8)
    parser.add_argument("--num-steps", type=int, default=16, help="rollout sampling steps")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--skip-balance", action="store_true")
    parser.add_argument("--out", default=str(ROOT / "docs" / "results" / "grpo_cost.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = load_config_file(GRPOConfig, args.recipe)
    config = replace(
        config,
        prompts_per_step=args.prompts,
        rollout=replace(config.rollout, group_size=args.group_size, num_steps=args.num_steps),
    )
    result: dict[str, Any] = {
        "model": args.model,
        "threads": args.threads,
        "recipe": config_to_dict(config),
        "cost": measure_cost(config, args.model, args.repeats),
    }
    if not args.skip_balance:
        result["gradient_balance"] = measure_gradient_balance(config, args.model)
    summary = {k: v for k, v in result["cost"].items() if k != "runs"}
    print(json.dumps({"cost": summary, "balance": result.get("gradient_balance")}, indent=2))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()

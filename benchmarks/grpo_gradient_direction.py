"""Does the GRPO gradient point uphill? A one-step check on the shipped model.

    python benchmarks/grpo_gradient_direction.py --steps 4

For each of `--steps` GRPO batches of the recipe (same prompts, k and seeds as a run's first
steps): roll out, score with the recipe's rewards, compute the flash loss gradient over all
transformer weights (full fine-tuning), then move the weights by eta along the normalised
descent direction (-g/|g|) and, separately, the ascent direction (+g/|g|), re-roll the SAME rows
(same noise) and measure the change of the mean reward of the trained rows. A correct policy
gradient raises the reward on descent and lowers it on ascent. Writes
docs/results/grpo_gradient_direction.json.
"""

from __future__ import annotations

import argparse
import json
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
from vpt.config import load_config_file  # noqa: E402
from vpt.rewards.reward_set import build_reward_set  # noqa: E402
from vpt.training.distributed import Ranks  # noqa: E402
from vpt.training.grpo import AdvantageConfig, compute_advantages, tgr_weights  # noqa: E402
from vpt.training.grpo_config import SHIPPED_MODEL, GRPOConfig, training_prompts  # noqa: E402
from vpt.training.grpo_train import (  # noqa: E402
    UpdateStats,
    accumulate_policy_gradient,
    plan_step,
    prepare_policy,
    score_videos,
)
from vpt.training.rollout import run_rollouts  # noqa: E402


def weighted_total(scores: dict[str, np.ndarray], weights: dict[str, float]) -> np.ndarray:
    """The weighted sum of the rewards' scores, per video."""
    return np.sum([weight * np.asarray(scores[name]) for name, weight in weights.items()], axis=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default=str(SHIPPED_MODEL))
    parser.add_argument("--recipe", default=str(ROOT / "recipes" / "shapes_grpo.yaml"))
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--prompts", type=int, default=4, help="prompt groups per batch")
    parser.add_argument("--etas", type=float, nargs="+", default=[0.02, 0.05])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--out", default=str(ROOT / "docs" / "results" / "grpo_gradient_direction.json")
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = load_config_file(GRPOConfig, args.recipe)
    config = replace(config, finetune="full", prompts_per_step=args.prompts)
    policy = prepare_policy(load_generator(args.model).generator, config)
    rewards = {r.name: r for r in build_reward_set(config.rewards).rewards}
    pool = training_prompts(config.prompts)
    parameters = [p for p in policy.generator.transformer.parameters() if p.requires_grad]
    start = [p.detach().clone() for p in parameters]
    group_ids = np.repeat(np.arange(config.prompts_per_step), config.rollout.group_size)
    advantage_config = AdvantageConfig(config.rewards.std_scope, config.advantage_clip)
    started = time.process_time()
    batches: list[dict[str, Any]] = []
    for step in range(args.steps):
        plan = plan_step(config, pool, step, Ranks())
        batch = run_rollouts(policy.generator, plan.request, config.rollout)
        scores = score_videos(rewards, batch)
        advantages = compute_advantages(scores, group_ids, config.rewards.weights, advantage_config)
        kept = advantages.is_kept
        if not kept.any():
            batches.append({"step": step, "kept": 0})
            continue
        for parameter in parameters:
            parameter.grad = None
        accumulate_policy_gradient(
            policy,
            batch,
            np.flatnonzero(kept),
            torch.from_numpy(advantages.values).float(),
            tgr_weights(batch.gradient_scale[:, 0])[:, None],
            config,
            Ranks(),
            UpdateStats(),
        )
        gradient = [p.grad.detach().clone() for p in parameters]  # type: ignore[union-attr]
        norm = torch.sqrt(sum((g.double() ** 2).sum() for g in gradient))  # type: ignore[misc]
        total = weighted_total(scores, config.rewards.weights)
        record: dict[str, Any] = {
            "step": step,
            "kept": int(kept.sum()),
            "reward_before": round(float(total[kept].mean()), 4),
        }
        for direction, sign in (("descent", 1.0), ("ascent", -1.0)):
            for eta in args.etas:
                with torch.no_grad():
                    for parameter, origin, g in zip(parameters, start, gradient, strict=True):
                        parameter.copy_(origin - sign * eta * g / norm)
                moved = run_rollouts(policy.generator, plan.request, config.rollout)
                after = score_videos(rewards, moved)
                moved_total = weighted_total(after, config.rewards.weights)
                change = float(moved_total[kept].mean() - total[kept].mean())
                record[f"{direction}_eta{eta}"] = round(change, 4)
        with torch.no_grad():
            for parameter, origin in zip(parameters, start, strict=True):
                parameter.copy_(origin)
        batches.append(record)
        print(json.dumps(record), flush=True)
    result = {
        "model": args.model,
        "rewards": dict(config.rewards.weights),
        "prompts_per_batch": args.prompts,
        "group_size": config.rollout.group_size,
        "batches": batches,
        "cpu_seconds": round(time.process_time() - started, 1),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""How much learning signal one SDE step at k carries, per k: within-group spread and agreement.

    python benchmarks/grpo_signal_by_step.py --checkpoint runs/shapes-sft-v5/checkpoint \
        --ks 0,2,4,6,8,10,12,14 --out docs/results/grpo_signal_by_step_v5.json

GRPO learns only from the differences between the rollouts of one group. For each branch step k
this samples groups with the GRPO rollout code (two-pass, shared prefix unless told otherwise,
short training-pool prompts), then reads every video with the held-out judge
(`vpt.eval.judge`) and the learned motion and visual rewards, and reports:

- the judge's mean and *within-group* standard deviation of motion, jitter, visual and blur:
  how far one explored step can move what the judge scores;
- the within-group correlation between each learned reward and the judge dimension it stands
  for (rows centred on their group mean, pooled): how often the reward's preferred rollout is
  the one the judge prefers too. Near 0 means GRPO at that k mostly follows reward noise.

The judge is never a training reward; it is read here only to choose where to explore.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vpt.checkpoint import load_generator  # noqa: E402
from vpt.eval.judge import judge_videos  # noqa: E402
from vpt.rewards.reward_set import RewardSetConfig, build_reward_set  # noqa: E402
from vpt.sampling.sde import SDEConfig  # noqa: E402
from vpt.training.grpo_config import PromptPoolConfig, training_prompts  # noqa: E402
from vpt.training.rollout import (  # noqa: E402
    RolloutConfig,
    isotemporal_request,
    run_rollouts,
)


def within_std(values_PG: np.ndarray) -> float:
    """Mean over groups of the standard deviation inside each group."""
    return float(values_PG.std(axis=1).mean())


def within_correlation(a_PG: np.ndarray, b_PG: np.ndarray) -> float:
    """Pearson correlation of a and b after removing each group's mean (pooled over groups)."""
    a = a_PG - a_PG.mean(axis=1, keepdims=True)
    b = b_PG - b_PG.mean(axis=1, keepdims=True)
    denominator = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / denominator) if denominator > 0 else 0.0


def measure_step(generator, prompts: list[str], k: int, config: RolloutConfig, rewards, seed: int):
    """One row: the groups of every prompt explored at step k."""
    group = config.group_size
    request = isotemporal_request(prompts, group, k, config.share_prefix, (seed,))
    rows = list(request.prompts)
    started = time.process_time()
    batch = run_rollouts(generator, request, config)
    scores = judge_videos(batch.videos, rows)
    learned = rewards.score(batch.videos, rows)
    shape = (len(prompts), group)

    def judged(read) -> np.ndarray:
        return np.array([read(s) for s in scores], dtype=np.float64).reshape(shape)

    motion, visual = judged(lambda s: s.motion), judged(lambda s: s.visual)
    jitter, blur = judged(lambda s: s.factors["jitter"]), judged(lambda s: s.factors["blur"])
    reward_motion = learned["motion_quality"].astype(np.float64).reshape(shape)
    reward_visual = learned["visual_quality"].astype(np.float64).reshape(shape)
    return {
        "k": k,
        "judge_motion": {"mean": float(motion.mean()), "within_std": within_std(motion)},
        "judge_jitter": {"mean": float(jitter.mean()), "within_std": within_std(jitter)},
        "judge_visual": {"mean": float(visual.mean()), "within_std": within_std(visual)},
        "judge_blur": {"mean": float(blur.mean()), "within_std": within_std(blur)},
        "reward_motion_quality": {
            "mean": float(reward_motion.mean()),
            "within_std": within_std(reward_motion),
            "corr_judge_motion": within_correlation(reward_motion, motion),
            "corr_judge_jitter": within_correlation(reward_motion, jitter),
        },
        "reward_visual_quality": {
            "mean": float(reward_visual.mean()),
            "within_std": within_std(reward_visual),
            "corr_judge_visual": within_correlation(reward_visual, visual),
        },
        "cpu_seconds": time.process_time() - started,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--ks", default="0,2,4,6,8,10,12,14", help="branch steps, comma-separated")
    parser.add_argument("--prompts", type=int, default=8, help="groups (one prompt each) per k")
    parser.add_argument("--register", choices=("short", "detailed", "mixed"), default="short")
    parser.add_argument("--group-size", type=int, default=8)
    parser.add_argument("--num-steps", type=int, default=16)
    parser.add_argument("--anchor-steps", type=int, default=8)
    parser.add_argument("--noise-level", type=float, default=2.0)
    parser.add_argument("--independent-prefix", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="docs/results/grpo_signal_by_step.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    ks = [int(text) for text in args.ks.split(",") if text.strip()]
    config = RolloutConfig(
        group_size=args.group_size,
        num_steps=args.num_steps,
        sde=SDEConfig(noise_level=args.noise_level),
        share_prefix=not args.independent_prefix,
        branch_fraction=1.0,
        anchor_steps=args.anchor_steps,
    )
    if args.prompts < 1 or args.group_size < 2:
        parser.error("--prompts must be >= 1 and --group-size >= 2")
    bad = [k for k in ks if not 0 <= k < args.num_steps - 1]
    if bad:
        parser.error(f"--ks {bad} outside 0..{args.num_steps - 2} (the last step is never an SDE)")
    generator = load_generator(args.checkpoint).generator
    pool_config = PromptPoolConfig(count=max(64, args.prompts), seed=0, register=args.register)
    pool = training_prompts(pool_config)
    prompts = list(pool[: args.prompts])
    learned = {"motion_quality": 1.0, "visual_quality": 1.0}
    rewards = build_reward_set(RewardSetConfig(weights=learned))
    result = {"checkpoint": args.checkpoint, "settings": vars(args), "prompts": prompts, "rows": []}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for k in ks:
        row = measure_step(generator, prompts, k, config, rewards, args.seed)
        result["rows"].append(row)
        print(
            f"k={k:2d}  judge motion {row['judge_motion']['mean']:.3f} "
            f"(within-group std {row['judge_motion']['within_std']:.3f})  jitter std "
            f"{row['judge_jitter']['within_std']:.3f}  corr(reward motion, judge jitter) "
            f"{row['reward_motion_quality']['corr_judge_jitter']:+.2f}  corr(reward visual, "
            f"judge visual) {row['reward_visual_quality']['corr_judge_visual']:+.2f}",
            flush=True,
        )
        out.write_text(json.dumps(result, indent=2) + "\n")  # a partial run keeps its rows


if __name__ == "__main__":
    main()

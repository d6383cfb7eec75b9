"""Training reward of a GRPO checkpoint against its SFT parent on fixed prompts and seeds.

    python benchmarks/grpo_reward_gain.py --a runs/grpo/checkpoint     # --b: the shipped model

Both models sample the same (prompt, seed) pairs with their default sampler (the ODE, as at
deployment); the prompts come from the GRPO training pool (`training_prompts`, the recipe's
pool), the rewards are the recipe's. Prints and writes each reward's mean for A and B and the
paired mean difference with a bootstrap 95% CI over prompts; the held-out judge's view is
`vpt eval gsb` (docs/grpo.md). Writes docs/results/grpo_reward_gain.json by default.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vpt.checkpoint import load_generator  # noqa: E402
from vpt.config import load_config_file  # noqa: E402
from vpt.rewards.reward_set import build_reward_set  # noqa: E402
from vpt.training.grpo_config import SHIPPED_MODEL, GRPOConfig, training_prompts  # noqa: E402

BOOTSTRAP_SAMPLES = 2000


def paired_interval(differences: np.ndarray, seed: int = 0) -> tuple[float, float]:
    """Bootstrap 95% interval of the mean of per-prompt paired differences."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(differences), size=(BOOTSTRAP_SAMPLES, len(differences)))
    means = differences[draws].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--a", required=True, help="the GRPO checkpoint")
    parser.add_argument("--b", default=str(SHIPPED_MODEL), help="the baseline (SFT) checkpoint")
    parser.add_argument("--recipe", default=str(ROOT / "recipes" / "shapes_grpo.yaml"))
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(ROOT / "docs" / "results" / "grpo_reward_gain.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = load_config_file(GRPOConfig, args.recipe)
    prompts = list(training_prompts(config.prompts)[: args.prompts])
    rewards = build_reward_set(config.rewards)
    pairs = [(p, s) for p in prompts for s in range(args.seeds)]
    scores: dict[str, dict[str, np.ndarray]] = {}
    started = time.process_time()
    for label, path in (("a", args.a), ("b", args.b)):
        generator = load_generator(path).generator
        videos = generator.generate([p for p, _ in pairs], [s for _, s in pairs])
        scored = rewards.score(videos, [p for p, _ in pairs])
        scores[label] = {name: np.asarray(v, dtype=np.float64) for name, v in scored.items()}
    result: dict[str, Any] = {
        "a": args.a,
        "b": args.b,
        "prompts": len(prompts),
        "seeds": args.seeds,
        "rewards": {},
        "cpu_seconds": round(time.process_time() - started, 1),
    }
    for name in scores["a"]:
        per_prompt = (scores["a"][name] - scores["b"][name]).reshape(len(prompts), args.seeds)
        differences = per_prompt.mean(axis=1)
        low, high = paired_interval(differences)
        result["rewards"][name] = {
            "mean_a": round(float(scores["a"][name].mean()), 4),
            "mean_b": round(float(scores["b"][name].mean()), 4),
            "difference": round(float(differences.mean()), 4),
            "ci95": [round(low, 4), round(high, 4)],
            "prompts_better": int((differences > 0).sum()),
            "prompts_worse": int((differences < 0).sum()),
        }
    print(json.dumps(result, indent=2))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()

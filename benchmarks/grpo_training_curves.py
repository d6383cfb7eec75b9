"""Training reward of GRPO runs against a frozen baseline run on the same steps.

    python benchmarks/grpo_training_curves.py --baseline runs/grpo_lr0 runs/grpo_a runs/grpo_b

Runs with the same `loop.seed` draw the same prompts, exploration steps and noise at every step,
so a baseline run with `optim.lr=0` (the SFT model, never updated) scores exactly the rollouts
the SFT model would have produced at each step. The per-step difference run - baseline is then
a paired measurement of what training changed; this prints and writes its mean per block of
steps and over the second half of the run with a bootstrap 95% CI over steps, and that
second-half difference per CPU minute the run used (`cpu_seconds` of its metrics).
Without `--baseline` it reports only each run's own block means (different prompts at each
step, so blocks are not paired and carry the prompts' noise).
Writes docs/results/grpo_training_curves.json by default.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

BOOTSTRAP_SAMPLES = 2000


def read_rewards(run_dir: Path, key: str = "reward") -> dict[int, float]:
    """Step -> mean training reward (`key`: the sum, or one `reward_<name>`) of its rollouts."""
    rewards = {}
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        if key in record:
            rewards[int(record["step"])] = float(record[key])
    return rewards


def read_cpu_minutes(run_dir: Path) -> float:
    """CPU minutes the run had used at its last logged step."""
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return float(json.loads(lines[-1])["cpu_seconds"]) / 60


def mean_interval(values: np.ndarray, seed: int = 0) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(values), size=(BOOTSTRAP_SAMPLES, len(values)))
    means = values[draws].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def block_mean(rewards: dict[int, float], steps: list[int]) -> float:
    return float(np.mean([rewards[s] for s in steps]))


def paired_curve(run: str, rewards: dict[int, float], args: argparse.Namespace) -> dict:
    """Block means of run - baseline on their shared steps, and the second half with its CI."""
    baseline = read_rewards(Path(args.baseline), args.key)
    steps = sorted(set(rewards) & set(baseline))
    if not steps:
        raise SystemExit(f"{run} and the baseline share no logged step")
    difference = np.array([rewards[s] - baseline[s] for s in steps])
    second_half = difference[len(difference) // 2 :]
    low, high = mean_interval(second_half)
    blocks = [
        {
            "steps": f"{steps[i]}-{steps[min(i + args.block, len(steps)) - 1]}",
            "reward": round(block_mean(rewards, steps[i : i + args.block]), 4),
            "baseline": round(block_mean(baseline, steps[i : i + args.block]), 4),
            "difference": round(float(difference[i : i + args.block].mean()), 4),
        }
        for i in range(0, len(steps), args.block)
    ]
    config = json.loads((Path(run) / "config.json").read_text())
    cpu_minutes = read_cpu_minutes(Path(run))
    return {
        "lr": config["optim"]["lr"],
        "mode": config["mode"],
        "finetune": config["finetune"],
        "steps": len(steps),
        "blocks": blocks,
        "second_half_difference": round(float(second_half.mean()), 4),
        "second_half_ci95": [round(low, 4), round(high, 4)],
        "cpu_minutes": round(cpu_minutes, 2),
        "second_half_difference_per_cpu_minute": round(float(second_half.mean()) / cpu_minutes, 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("runs", nargs="+", help="GRPO run folders")
    parser.add_argument("--baseline", help="the same recipe with optim.lr=0 (pairs the steps)")
    parser.add_argument("--block", type=int, default=10, help="steps per block")
    parser.add_argument(
        "--key", default="reward", help="metric: reward (the sum) or reward_<name> for one reward"
    )
    parser.add_argument("--out", default="docs/results/grpo_training_curves.json")
    args = parser.parse_args()
    result: dict[str, Any] = {"baseline": args.baseline, "metric": args.key, "runs": {}}
    for run in args.runs:
        rewards = read_rewards(Path(run), args.key)
        if args.baseline is None:
            steps = sorted(rewards)
            result["runs"][run] = {
                "steps": len(steps),
                "blocks": [
                    {
                        "steps": f"{steps[i]}-{steps[min(i + args.block, len(steps)) - 1]}",
                        "reward": round(block_mean(rewards, steps[i : i + args.block]), 4),
                    }
                    for i in range(0, len(steps), args.block)
                ],
                "cpu_minutes": round(read_cpu_minutes(Path(run)), 2),
            }
        else:
            result["runs"][run] = paired_curve(run, rewards, args)
    print(json.dumps(result, indent=2))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()

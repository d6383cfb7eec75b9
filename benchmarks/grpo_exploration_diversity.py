"""Can one SDE step change what GRPO must fix? Direction diversity inside a rollout group.

    python benchmarks/grpo_exploration_diversity.py                       # shipped SFT model
    python benchmarks/grpo_exploration_diversity.py --checkpoint runs/grpo/checkpoint

GRPO learns only from reward differences within a group, and with isotemporal single-step
exploration the policy gradient flows through one SDE step at k: with a shared prefix the rows
of a group differ only by that step's noise (and the ODE after it), so an attribute the step's
noise cannot change gives no learning signal at all. With independent prefixes the rows differ
from the first step, but the part of the reward decided by the initial noise is independent of
the explored step's noise and averages out of the gradient.

For each candidate k and each prefix mode, this samples groups (G rollouts of one prompt, the
GRPO rollout code and seeding) and reads every video with the analytic detector: the number of
distinct motion directions per group, the fraction of groups with more than one, and the
direction accuracy. Writes JSON to docs/results/.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vpt.checkpoint import load_generator  # noqa: E402
from vpt.cli.main import DEFAULT_MODEL  # noqa: E402
from vpt.sampling.sde import SDEConfig  # noqa: E402
from vpt.training.rollout import (  # noqa: E402
    RolloutConfig,
    branch_candidates,
    isotemporal_request,
    run_rollouts,
)
from vpt.world.detector import detect  # noqa: E402
from vpt.world.parser import parse_prompt  # noqa: E402

PROMPTS = [
    "a red circle moving left",
    "a green square moving right",
    "a blue triangle moving up",
    "a yellow circle moving down",
    "a large white square moving left slowly over a navy background",
    "a small cyan triangle moving right fast over a black background",
]


def sample_groups(generator, config: RolloutConfig, k: int, groups: int, seed: int) -> list[dict]:
    """`groups` groups per prompt at branch step k; one record per group."""
    records = []
    for group in range(groups):
        request = isotemporal_request(
            PROMPTS, config.group_size, k, config.share_prefix, (seed, group)
        )
        batch = run_rollouts(generator, request, config)
        for index, prompt in enumerate(PROMPTS):
            wanted = parse_prompt(prompt).attributes.direction
            rows = range(index * config.group_size, (index + 1) * config.group_size)
            read = [detect(batch.videos[row]).attributes.direction for row in rows]
            records.append(
                {
                    "prompt": prompt,
                    "distinct": len({d for d in read if d is not None}),
                    "correct": sum(d == wanted for d in read) / len(read),
                }
            )
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkpoint", default=str(DEFAULT_MODEL))
    parser.add_argument("--group-size", type=int, default=8)
    parser.add_argument("--groups", type=int, default=1, help="groups per prompt and k")
    parser.add_argument("--num-steps", type=int, default=16)
    parser.add_argument("--noise-level", type=float, default=0.98)
    parser.add_argument("--branch-fraction", type=float, default=0.5)
    parser.add_argument(
        "--prefix", choices=("both", "shared", "independent"), default="both", help="modes to run"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="docs/results/grpo_exploration_diversity.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    generator = load_generator(args.checkpoint).generator
    result = {
        "checkpoint": args.checkpoint,
        "group_size": args.group_size,
        "num_steps": args.num_steps,
        "noise_level": args.noise_level,
        "branch_fraction": args.branch_fraction,
        "prompts": PROMPTS,
        "rows": [],
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    modes = {"both": (True, False), "shared": (True,), "independent": (False,)}[args.prefix]
    for share_prefix in modes:
        config = RolloutConfig(
            group_size=args.group_size,
            num_steps=args.num_steps,
            sde=SDEConfig(noise_level=args.noise_level),
            share_prefix=share_prefix,
            branch_fraction=args.branch_fraction,
        )
        for k in branch_candidates(config):
            records = sample_groups(generator, config, k, args.groups, args.seed)
            row = {
                "share_prefix": share_prefix,
                "k": k,
                "mean_distinct_directions": statistics.mean(r["distinct"] for r in records),
                "groups_with_spread": sum(r["distinct"] > 1 for r in records) / len(records),
                "direction_accuracy": statistics.mean(r["correct"] for r in records),
                "groups": len(records),
            }
            result["rows"].append(row)
            print(json.dumps(row), flush=True)
            out.write_text(json.dumps(result, indent=2) + "\n")  # a partial run keeps its rows


if __name__ == "__main__":
    main()

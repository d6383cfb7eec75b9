"""`vpt train grpo`: the GRPO RLHF stage (imports stay inside the command, so `vpt --help` stays
fast).

    vpt train grpo --recipe recipes/shapes_grpo.yaml --out runs/grpo --set loop.steps=20

Starts from the recipe's `init_from` (default: the shipped SFT model), writes
`OUT/metrics.jsonl` (one line per logged step: rewards, advantages, ratios, clip fraction, KL,
TGR weights, grad norm, rollout and update seconds), saves its state every `loop.save_every`
steps and resumes from it when run again with the same --out; the finished run leaves
`OUT/checkpoint` (stage grpo, parent = the SFT model's version). Several processes:
`torchrun --nproc_per_node N -m vpt.cli.main train grpo ...` (gloo on CPU, NCCL with
--device cuda); rollout.group_size must be divisible by N.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any


def add_train_grpo_command(train_commands: Any) -> None:
    """Add `grpo` to the `vpt train` subcommands."""
    grpo = train_commands.add_parser(
        "grpo",
        help="GRPO RLHF of a generator (flash / flow_grpo / no_tgr)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    grpo.add_argument("--recipe", help="YAML recipe (e.g. recipes/shapes_grpo.yaml)")
    grpo.add_argument("--out", required=True, help="run folder: state, metrics, checkpoint")
    grpo.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override a recipe value, e.g. --set loop.steps=20 --set mode=flow_grpo",
    )
    grpo.add_argument("--device", default="cpu", help="torch device (default cpu)")
    grpo.set_defaults(func=cmd_train_grpo)


def load_grpo_config(recipe: str | None, overrides: list[str]) -> Any:
    """The recipe file with `--set` overrides applied, as a checked `GRPOConfig`."""
    from vpt.config import load_config
    from vpt.training.grpo_config import GRPOConfig

    return load_config(GRPOConfig, recipe, overrides, where="recipe")


def cmd_train_grpo(args: argparse.Namespace) -> None:
    import torch

    from vpt.training.distributed import init_distributed_from_env
    from vpt.training.grpo_train import run_grpo

    config = load_grpo_config(args.recipe, args.set or [])
    torch.set_num_threads(int(os.environ.get("VPT_THREADS", "1")))
    device = init_distributed_from_env(args.device)
    result = run_grpo(config, Path(args.out), device=device)
    if result.checkpoint is not None or not torch.distributed.is_initialized():
        print(
            json.dumps(
                {
                    "out": args.out,
                    "steps": result.step,
                    "finished": result.finished,
                    "checkpoint": str(result.checkpoint) if result.checkpoint else None,
                    "reward": result.metrics.get("reward"),
                }
            )
        )

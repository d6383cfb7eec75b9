"""`vpt train rewards` and `vpt export rewards` (imports stay inside the commands).

    vpt train rewards --recipe recipes/shapes_rewards.yaml --out runs/rewards
    vpt export rewards --out runs/triton_models [--models runs/rewards/models]

Training shows progress, writes `OUT/<name>/metrics.jsonl`, resumes from its last saved state
when started again with the same `--out`, and leaves verified reward model folders in
`OUT/models/` and a Triton model repository in `OUT/triton/`. Export writes the Triton model
repository (`<name>/config.pbtxt` + `<name>/1/model.onnx`) of the shipped (or given) models.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def add_train_rewards_command(train_commands: Any, handler: Any) -> None:
    """Add `train rewards` to the `train` subcommands; `handler(args)` runs it."""
    rewards = train_commands.add_parser(
        "rewards",
        help="train the learned rewards (visual, motion, text alignment) and export them",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    rewards.add_argument(
        "--recipe", "--config", dest="config", help="YAML recipe (recipes/shapes_rewards.yaml)"
    )
    rewards.add_argument(
        "--out", "--run-dir", dest="run_dir", required=True, help="run folder (state, models)"
    )
    rewards.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override a recipe value, e.g. --set visual_quality.loop.steps=20",
    )
    rewards.set_defaults(func=handler)


def run_train_rewards(config: Any, run_dir: Path) -> None:
    """Train (or resume) and print where the models and the Triton repository are."""
    from vpt.training.rewards import train_rewards

    models = train_rewards(config, run_dir)
    print(
        json.dumps(
            {
                "run_dir": str(run_dir),
                "models": str(models) if models else None,
                "triton_repository": str(run_dir / "triton") if models else None,
                "finished": models is not None,
            }
        )
    )


def add_export_commands(subparsers: Any) -> None:
    """Add `export rewards` to the `vpt` subcommands."""
    export = subparsers.add_parser("export", help="export models for serving")
    commands = export.add_subparsers(dest="export_command", required=True)
    rewards = commands.add_parser(
        "rewards",
        help="write a Triton model repository (config.pbtxt + 1/model.onnx) of reward models",
    )
    rewards.add_argument("--out", required=True, help="folder of the Triton model repository")
    rewards.add_argument(
        "--models",
        default="packaged",
        help="reward models folder (default: the shipped ones; or RUN/models of a training run)",
    )
    rewards.add_argument(
        "--name", action="append", dest="names", help="export only this model (repeatable)"
    )
    rewards.set_defaults(func=cmd_export_rewards)


def cmd_export_rewards(args: argparse.Namespace) -> None:
    from vpt.rewards.onnx_export import write_triton_repository

    names = tuple(args.names) if args.names else None
    written = write_triton_repository(args.models, Path(args.out), names)
    print(json.dumps({"out": args.out, "models": [path.name for path in written]}))

"""The `vpt` command line: generate videos, inspect checkpoints, preview the world, train.

Errors a user can fix (bad arguments, unknown prompt words, tampered checkpoints, bad configs)
are printed as one `error: ...` line with exit status 2, never as a stack trace.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from vpt.cli.eval_commands import add_eval_commands
from vpt.cli.grpo_commands import add_train_grpo_command
from vpt.cli.reward_commands import (
    add_export_commands,
    add_train_rewards_command,
    run_train_rewards,
)

DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "assets" / "models" / "shapes-default"


class UsageError(Exception):
    """A problem with what the user asked for; printed without a traceback."""


def _limit_threads() -> None:
    # One intra-op thread unless told otherwise: on a shared 2-core box OpenMP spin-waiting
    # made two threads 5-12x slower than one.
    import torch

    torch.set_num_threads(int(os.environ.get("VPT_THREADS", "1")))


def _check_prompt(prompt: str, strict: bool) -> None:
    from vpt.world import parse_prompt

    if not prompt.strip():
        raise UsageError("--prompt is empty; describe the video, e.g. 'red circle moving left'")
    parsed = parse_prompt(prompt)
    problems = []
    if parsed.unknown_words:
        problems.append(f"unknown word(s) {', '.join(repr(w) for w in parsed.unknown_words)}")
    if parsed.conflicts:
        problems.append(f"conflicting words: {'; '.join(parsed.conflicts)}")
    if problems:
        message = (
            f"prompt {prompt!r}: {' and '.join(problems)}; the shapes-world model knows "
            "shapes, colors, sizes, directions, speeds and backgrounds "
            "(see `vpt world vocabulary`)"
        )
        if strict:
            raise UsageError(message)
        print(f"warning: {message}", file=sys.stderr)


def cmd_generate(args: argparse.Namespace) -> None:
    from vpt.checkpoint import load_generator
    from vpt.generator import SamplerSettings
    from vpt.video_io import write_video

    out = Path(args.out)
    if out.suffix.lower() not in (".mp4", ".gif", ".npy"):
        raise UsageError(f"--out {out}: the file must end in .mp4, .gif or .npy")
    if args.seed < 0 or args.seed >= 2**63:
        raise UsageError(f"--seed {args.seed}: must be in 0..2^63-1")
    _check_prompt(args.prompt, args.strict)

    def settings(defaults: SamplerSettings) -> SamplerSettings:
        chosen = SamplerSettings(
            num_steps=args.steps if args.steps is not None else defaults.num_steps,
            shift=args.shift if args.shift is not None else defaults.shift,
            guidance_scale=args.guidance if args.guidance is not None else defaults.guidance_scale,
            anchor_steps=(
                args.anchor_steps if args.anchor_steps is not None else defaults.anchor_steps
            ),
        )
        try:
            chosen.validate()
        except ValueError as error:
            raise UsageError(str(error)) from None
        return chosen

    settings(SamplerSettings())  # refuse bad flags before loading anything
    _limit_threads()
    if _is_distilled_student(args.model):  # a causal few-step student: sample it chunk by chunk
        from vpt.ar_generator import load_ar_generator

        if args.guidance not in (None, 1.0):
            raise UsageError("--guidance: a distilled student samples without guidance (use 1)")
        if args.anchor_steps not in (None, 0):
            raise UsageError("--anchor-steps: a distilled student samples in one pass (use 0)")
        model = load_ar_generator(args.model)
        student = model.settings
        sampler = settings(SamplerSettings(student.num_steps, student.shift, 1.0))
        video = model.generate([args.prompt], [args.seed], sampler)[0]
        fps = model.config.geometry.fps
    else:
        generator = load_generator(args.model).generator
        sampler = settings(generator.config.sampler)
        video = generator.generate([args.prompt], [args.seed], sampler)[0]
        fps = generator.config.geometry.fps
    out.parent.mkdir(parents=True, exist_ok=True)
    write_video(video, out, fps=fps)
    print(
        json.dumps(
            {
                "out": str(out),
                "frames": int(video.shape[0]),
                "height": int(video.shape[1]),
                "width": int(video.shape[2]),
                "seed": args.seed,
                "prompt": args.prompt,
            }
        )
    )


def _is_distilled_student(folder: str) -> bool:
    from vpt.checkpoint import MANIFEST, CheckpointError, read_manifest

    if not (Path(folder) / MANIFEST).is_file():
        return False
    try:
        return read_manifest(folder).stage == "distill"
    except CheckpointError:
        return False  # the loader reports what is wrong with the folder


def cmd_info(args: argparse.Namespace) -> None:
    from vpt.checkpoint import load_generator
    from vpt.config import config_to_dict
    from vpt.models.transformer import count_parameters

    loaded = load_generator(args.checkpoint)
    generator = loaded.generator
    manifest = loaded.manifest
    info = {
        "path": str(loaded.path),
        "verified": manifest is not None,
        "version": manifest.version if manifest else None,
        "parent": manifest.parent if manifest else None,
        "stage": manifest.stage if manifest else None,
        "steps": manifest.steps if manifest else None,
        "data_seed": manifest.data_seed if manifest else None,
        "metrics": manifest.metrics if manifest else {},
        "transformer_parameters": count_parameters(generator.transformer),
        "autoencoder_parameters": count_parameters(generator.autoencoder),
        "latent_shape": list(generator.latent_shape()),
        "config": config_to_dict(generator.config),
    }
    print(json.dumps(info, indent=2))


def cmd_world_preview(args: argparse.Namespace) -> None:
    from vpt.world import ShapesWorld, WorldConfig, save_preview_grid

    if not 1 <= args.count <= 256:
        raise UsageError(f"--count {args.count}: must be in 1..256")
    config = WorldConfig(defect_fraction=args.defect_fraction)
    world = ShapesWorld(config, seed=args.seed)
    clips = [world[i] for i in range(args.count)]
    save_preview_grid([c.frames for c in clips], args.out, captions=[c.caption for c in clips])
    print(json.dumps({"out": args.out, "clips": args.count}))


def cmd_world_vocabulary(args: argparse.Namespace) -> None:
    from vpt.world.vocabulary import ATTRIBUTE_TYPES

    print(
        json.dumps(
            {name.value: [m.value for m in enum] for name, enum in ATTRIBUTE_TYPES.items()},
            indent=2,
        )
    )


def _load_training_config(cls: type, args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from vpt.config import ConfigError, load_config

    try:
        return load_config(cls, args.config, args.set or [])
    except ConfigError as error:
        raise UsageError(str(error)) from None


def cmd_train_autoencoder(args: argparse.Namespace) -> None:
    from vpt.training.autoencoder import AutoencoderTrainingConfig, train_autoencoder

    config = _load_training_config(AutoencoderTrainingConfig, args)
    _limit_threads()
    train_autoencoder(config, Path(args.run_dir), device=args.device)
    print(json.dumps({"run_dir": args.run_dir, "vae": str(Path(args.run_dir) / "vae")}))


def _print_run_result(run_dir: str, checkpoint: Path | None) -> None:
    """One JSON line: the run folder, its final checkpoint, and whether it finished."""
    print(
        json.dumps(
            {
                "run_dir": run_dir,
                "checkpoint": str(checkpoint) if checkpoint else None,
                "finished": checkpoint is not None,
            }
        )
    )


def cmd_train_sft(args: argparse.Namespace) -> None:
    from vpt.training.sft import SFTConfig, run_sft

    config = _load_training_config(SFTConfig, args)
    _limit_threads()
    _print_run_result(args.run_dir, run_sft(config, Path(args.run_dir), device=args.device))


def cmd_train_distill(args: argparse.Namespace) -> None:
    from vpt.training.distill import DistillConfig, run_distill

    config = _load_training_config(DistillConfig, args)
    _limit_threads()
    _print_run_result(args.run_dir, run_distill(config, Path(args.run_dir), device=args.device))


def cmd_train_rewards(args: argparse.Namespace) -> None:
    from vpt.training.rewards import RewardTrainingConfig

    config = _load_training_config(RewardTrainingConfig, args)
    _limit_threads()
    run_train_rewards(config, Path(args.run_dir))


def add_plugin_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Subcommands other installed packages register under the `vpt.commands` entry-point group.

    Each entry point names a `register(commands)` function; services (e.g. `serving`:
    `vpt serve`, `vpt client`) add their commands this way, so the core never imports them.
    A plugin that fails to load is reported on stderr and left out.
    """
    from importlib.metadata import entry_points

    for entry_point in sorted(entry_points(group="vpt.commands"), key=lambda e: e.name):
        try:
            register = entry_point.load()
        except Exception as error:  # a broken optional plugin must not break the core CLI
            print(f"warning: vpt command plugin {entry_point.name!r}: {error}", file=sys.stderr)
            continue
        register(commands)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vpt", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    generate = commands.add_parser("generate", help="generate a video from a prompt")
    generate.add_argument("--prompt", required=True, help="what to generate")
    generate.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    generate.add_argument("--out", required=True, help="output file: .mp4, .gif or .npy")
    generate.add_argument("--model", default=str(DEFAULT_MODEL), help="checkpoint folder")
    generate.add_argument("--steps", type=int, help="sampling steps (model default)")
    generate.add_argument("--guidance", type=float, help="CFG scale (model default)")
    generate.add_argument("--shift", type=float, help="schedule shift (model default)")
    generate.add_argument(
        "--anchor-steps",
        type=int,
        help="steps of a first text-to-video pass whose first frame anchors the main pass "
        "(two-pass sampling; 0: one pass; model default)",
    )
    generate.add_argument(
        "--strict", action="store_true", help="refuse prompts with unknown words instead of warning"
    )
    generate.set_defaults(func=cmd_generate)

    info = commands.add_parser("info", help="describe and verify a checkpoint")
    info.add_argument("checkpoint", nargs="?", default=str(DEFAULT_MODEL))
    info.set_defaults(func=cmd_info)

    world = commands.add_parser("world", help="the procedural shapes world")
    world_commands = world.add_subparsers(dest="world_command", required=True)
    preview = world_commands.add_parser("preview", help="write a PNG grid of world clips")
    preview.add_argument("--out", default="world_preview.png")
    preview.add_argument("--count", type=int, default=12)
    preview.add_argument("--seed", type=int, default=0)
    preview.add_argument("--defect-fraction", type=float, default=0.3)
    preview.set_defaults(func=cmd_world_preview)
    vocabulary = world_commands.add_parser("vocabulary", help="print the world's vocabulary")
    vocabulary.set_defaults(func=cmd_world_vocabulary)

    train = commands.add_parser("train", help="training stages")
    train_commands = train.add_subparsers(dest="train_command", required=True)
    for name, func, text in (
        ("autoencoder", cmd_train_autoencoder, "train the latent autoencoder on the world"),
        ("sft", cmd_train_sft, "flow-matching SFT of the video transformer"),
    ):
        stage = train_commands.add_parser(name, help=text)
        stage.add_argument("--config", help="YAML recipe (e.g. recipes/shapes_sft.yaml)")
        stage.add_argument("--run-dir", required=True, help="folder for state, metrics, output")
        stage.add_argument(
            "--set",
            action="append",
            metavar="KEY=VALUE",
            help="override a config value, e.g. --set loop.steps=20",
        )
        stage.add_argument("--device", default="cpu", help="torch device (default cpu)")
        stage.set_defaults(func=func)
    distill = train_commands.add_parser(
        "distill", help="distil the model into a causal few-step streaming student"
    )
    distill.add_argument(
        "--recipe", "--config", dest="config", help="YAML recipe (recipes/shapes_distill.yaml)"
    )
    distill.add_argument(
        "--out", "--run-dir", dest="run_dir", required=True, help="folder for state and output"
    )
    distill.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a value")
    distill.add_argument("--device", default="cpu", help="torch device (default cpu)")
    distill.set_defaults(func=cmd_train_distill)
    add_train_rewards_command(train_commands, cmd_train_rewards)
    add_train_grpo_command(train_commands)
    add_eval_commands(commands)
    add_export_commands(commands)
    add_plugin_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from vpt.checkpoint import CheckpointError
    from vpt.config import ConfigError

    try:
        args.func(args)
    except (UsageError, CheckpointError, ConfigError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; a training run resumes from its last saved state", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())

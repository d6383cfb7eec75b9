"""`vpt eval ...`: evaluation commands (imports stay inside the commands, so `vpt --help`
stays fast).

    vpt eval gsb --a runs/grpo/checkpoint --b runs/sft/checkpoint --seeds 2 --out runs/gsb

writes `DIR/gsb.json` (the report and the judge's calibration), `DIR/gsb.md` (a table of G, S,
B, GSB, 95% CI and sign-test p per dimension) and `DIR/pairs.png` (A | B side by side for the
first prompts), and prints the table. Bad input raises ValueError with what to fix.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

PAIR_SHEET_ROWS = 8
"""Pairs shown in pairs.png."""


def add_eval_commands(subparsers: Any) -> None:
    """Add `eval` and its subcommands to the `vpt` parser's subcommands."""
    evaluate = subparsers.add_parser("eval", help="compare systems with the held-out judge")
    commands = evaluate.add_subparsers(dest="eval_command", required=True)
    gsb = commands.add_parser(
        "gsb",
        help="Good-Same-Bad of system A against system B on the same (prompt, seed) pairs",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    spec_help = "a checkpoint folder, world:clean, world:defective or world:raw"
    gsb.add_argument("--a", required=True, metavar="SPEC", help=f"system judged: {spec_help}")
    gsb.add_argument("--b", required=True, metavar="SPEC", help=f"baseline: {spec_help}")
    gsb.add_argument(
        "--prompts",
        default=None,
        metavar="FILE_OR_NAME",
        help="prompt file or packaged set name (default: the packaged shapes_eval_v1)",
    )
    gsb.add_argument(
        "--seeds", type=int, default=2, metavar="N", help="seeds 0..N-1 per prompt (default 2)"
    )
    gsb.add_argument("--out", required=True, metavar="DIR", help="folder for the report")
    gsb.add_argument("--limit", type=int, metavar="K", help="use only the first K prompts")
    gsb.set_defaults(func=cmd_eval_gsb)


def cmd_eval_gsb(args: argparse.Namespace) -> None:
    """Run `vpt eval gsb` with parsed arguments; ValueError on bad input."""
    from vpt.eval.comparison import compare_systems, save_pair_sheet
    from vpt.eval.judge import calibrate_judge
    from vpt.eval.prompt_set import DEFAULT_PROMPT_SET, load_prompt_set
    from vpt.eval.systems import load_systems, parse_system_spec

    if args.seeds < 1:
        raise ValueError(f"--seeds {args.seeds}: must be >= 1 (2 or more calibrate the margin)")
    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit {args.limit}: must be >= 1")
    specs = [parse_system_spec(args.a), parse_system_spec(args.b)]
    prompt_set = load_prompt_set(args.prompts or DEFAULT_PROMPT_SET)
    prompts = prompt_set.prompts[: args.limit] if args.limit else prompt_set.prompts
    if any(spec.checkpoint is not None for spec in specs):
        from vpt.cli.main import _limit_threads

        _limit_threads()
    systems = load_systems(specs)
    comparison = compare_systems(systems[0], systems[1], prompts, list(range(args.seeds)))
    report = replace(comparison.report, prompt_set=prompt_set.name)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    geometries = sorted(
        {tuple(videos.shape[2:5]) for videos in (comparison.videos_a, comparison.videos_b)}
    )
    document: dict[str, Any] = {
        **report.to_dict(),
        "judge_calibration": [asdict(calibrate_judge(*g)) for g in geometries],
    }
    (out / "gsb.json").write_text(json.dumps(document, indent=2) + "\n")
    markdown = report.to_markdown()
    (out / "gsb.md").write_text(markdown)
    save_pair_sheet(comparison, out / "pairs.png", pairs=PAIR_SHEET_ROWS)
    print(markdown, end="")

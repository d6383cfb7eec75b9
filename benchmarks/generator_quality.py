"""Prompt-following accuracy of a generator on held-out prompts, scored by the world's
analytic detector, with Wilson 95% intervals, plus a PNG grid of samples.

    python benchmarks/generator_quality.py                       # the shipped default model
    python benchmarks/generator_quality.py --model runs/sft/checkpoint --prompts 200

Prompts use attribute combinations that training never saw (vpt.world.splits); each prompt has
its own seed. `--register detailed` names all six attributes; `short` is user-style and scores
only the attributes it names.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vpt.checkpoint import load_generator  # noqa: E402
from vpt.cli.main import DEFAULT_MODEL  # noqa: E402
from vpt.config import config_to_dict  # noqa: E402
from vpt.eval.attributes import (  # noqa: E402
    AttributeReport,
    EvalCase,
    evaluate_attributes,
    held_out_cases,
    wilson_interval,
)
from vpt.world import save_preview_grid  # noqa: E402


def misses(report: AttributeReport, cases: list[EvalCase]) -> dict[str, dict[str, int]]:
    """Per attribute, how often each wrong reading occurred: {"square->circle": 7, ...}."""
    found: dict[str, Counter[str]] = {}
    for case, detection in zip(cases, report.detections, strict=True):
        for name in case.expected.mentioned:
            asked, read = case.expected.get(name), detection.attributes.get(name)
            if read != asked:
                found.setdefault(name.value, Counter())[f"{asked}->{read}"] += 1
    return {name: dict(counts.most_common()) for name, counts in sorted(found.items())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default=str(DEFAULT_MODEL))
    parser.add_argument("--prompts", type=int, default=200)
    parser.add_argument("--seed", type=int, default=2026, help="seed of the prompt set")
    parser.add_argument("--register", choices=["detailed", "short"], default="detailed")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="docs/results/generator_quality.json")
    parser.add_argument("--grid", default="docs/images/generator_samples.png")
    parser.add_argument("--guidance", type=float, help="override the model's default CFG scale")
    parser.add_argument(
        "--anchor-steps", type=int, help="override the model's two-pass setting (0: one pass)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    loaded = load_generator(args.model)
    generator = loaded.generator
    cases = held_out_cases(args.prompts, seed=args.seed, register=args.register)
    started = time.perf_counter()
    cpu_started = time.process_time()
    sampler = generator.config.sampler
    if args.guidance is not None:
        sampler = replace(sampler, guidance_scale=args.guidance)
    if args.anchor_steps is not None:
        sampler = replace(sampler, anchor_steps=args.anchor_steps)
    report = evaluate_attributes(generator, cases, sampler)
    seconds = time.perf_counter() - started
    attributes = {}
    for name in report.asked:
        if report.asked[name]:
            low, high = wilson_interval(report.correct[name], report.asked[name])
            attributes[name] = {
                "accuracy": round(report.accuracy(name), 4),
                "ci95": [round(low, 4), round(high, 4)],
                "correct": report.correct[name],
                "asked": report.asked[name],
            }
    result = {
        "model": args.model,
        "version": loaded.manifest.version if loaded.manifest else None,
        "register": args.register,
        "prompts": args.prompts,
        "prompt_seed": args.seed,
        "sampler": config_to_dict(sampler),
        "attributes": attributes,
        "all_correct": round(report.all_correct / report.cases, 4),
        "misses": misses(report, cases),
        "seconds": round(seconds, 1),
        "cpu_seconds": round(time.process_time() - cpu_started, 1),
        "threads": args.threads,
    }
    print(json.dumps(result, indent=2))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    if args.grid and report.videos is not None:
        shown = min(12, len(cases))
        videos = report.videos[:shown]
        Path(args.grid).parent.mkdir(parents=True, exist_ok=True)
        save_preview_grid(list(videos), args.grid, captions=[c.prompt for c in cases[:shown]])


if __name__ == "__main__":
    main()

"""GSB known-answer benchmark: the judge and the GSB statistics on comparisons whose answer is
known, using the world's reference systems on the packaged prompt set.

- clean vs defective: visual, motion and overall strongly positive (CI above 0), text ~0
  (the defective render still shows exactly what the prompt asks for);
- defective vs clean: the exact negation (the Same margin is pooled over both systems);
- clean vs raw (the raw world's defect mix, 30% of renders damaged): clean never loses, and
  overall GSB is at most the fraction of raw renders that carry a defect (reported);
- clean vs clean, same seeds: identical videos, so every pair is Same;
- raw vs raw, other seeds (seed + 1000): a null comparison of a system whose quality varies
  from seed to seed; each CI covers 0.

    python benchmarks/gsb_known_answer.py                    # 100 prompts x 2 seeds
    python benchmarks/gsb_known_answer.py --prompts 10 --json /tmp/gsb_known_answer.json

Prints figures and writes JSON; the bars live in tests/eval.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vpt.eval.comparison import compare_systems  # noqa: E402
from vpt.eval.gsb import DIMENSIONS, GSBReport  # noqa: E402
from vpt.eval.prompt_set import DEFAULT_PROMPT_SET, load_prompt_set  # noqa: E402
from vpt.eval.systems import ReseededSystem, System, world_system  # noqa: E402
from vpt.world import parse_prompt  # noqa: E402

NULL_SEED_OFFSET = 1000
"""Seed offset of the null comparison's system B."""

Check = Callable[[GSBReport], bool]


def positive_on_quality(report: GSBReport) -> bool:
    """Visual, motion and overall GSB have CIs above 0; text GSB is within +-0.1."""
    quality = all(report.dimensions[d].ci_low > 0 for d in ("visual", "motion", "overall"))
    return quality and abs(report.dimensions["text"].gsb) <= 0.1


def negative_on_quality(report: GSBReport) -> bool:
    """Visual, motion and overall GSB have CIs below 0; text GSB is within +-0.1."""
    quality = all(report.dimensions[d].ci_high < 0 for d in ("visual", "motion", "overall"))
    return quality and abs(report.dimensions["text"].gsb) <= 0.1


def never_loses(report: GSBReport) -> bool:
    """A is never Bad on any dimension, and wins on overall."""
    never_bad = all(r.bad == 0 for r in report.dimensions.values())
    return never_bad and report.dimensions["overall"].ci_low > 0


def all_same(report: GSBReport) -> bool:
    """Every pair on every dimension is Same."""
    return all(r.good == r.bad == 0 for r in report.dimensions.values())


def null(report: GSBReport) -> bool:
    """Every dimension's CI covers 0."""
    return all(r.ci_low <= 0 <= r.ci_high for r in report.dimensions.values())


def main(argv: Sequence[str] | None = None) -> None:
    """Run the five comparisons, print a summary and the tables, and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--prompts", type=int, default=100, help="first N prompts of the set")
    parser.add_argument("--seeds", type=int, default=2, help="seeds per prompt")
    parser.add_argument("--prompt-set", default=DEFAULT_PROMPT_SET)
    parser.add_argument("--json", type=Path, default=ROOT / "docs/results/gsb_known_answer.json")
    args = parser.parse_args(argv)
    prompt_set = load_prompt_set(args.prompt_set)
    prompts = prompt_set.prompts[: args.prompts]
    seeds = list(range(args.seeds))
    clean, defective, raw = (world_system(c) for c in ("clean", "defective", "raw"))
    comparisons: list[tuple[str, System, System, Check]] = [
        ("clean_vs_defective", clean, defective, positive_on_quality),
        ("defective_vs_clean", defective, clean, negative_on_quality),
        ("clean_vs_raw", clean, raw, never_loses),
        ("clean_vs_clean_same_seeds", clean, clean, all_same),
        ("raw_vs_raw_other_seeds", raw, ReseededSystem(raw, NULL_SEED_OFFSET), null),
    ]
    damaged = [
        not raw.defects_for(parse_prompt(prompt).attributes, seed).is_clean
        for prompt in prompts
        for seed in seeds
    ]
    results: dict[str, Any] = {}
    for name, system_a, system_b, check in comparisons:
        started = time.perf_counter()
        report = compare_systems(system_a, system_b, prompts, seeds).report
        report = GSBReport.from_dict({**report.to_dict(), "prompt_set": prompt_set.name})
        results[name] = {
            "expected": check.__doc__,
            "holds": check(report),
            "seconds": time.perf_counter() - started,
            "report": report.to_dict(),
        }
        summary = ", ".join(
            f"{d} {100 * report.dimensions[d].gsb:+.1f}% "
            f"[{100 * report.dimensions[d].ci_low:+.1f}, {100 * report.dimensions[d].ci_high:+.1f}]"
            for d in DIMENSIONS
        )
        print(f"{name}: holds={check(report)}: {summary}")
        print(report.to_markdown())
    document = {
        "prompt_set": prompt_set.name,
        "prompts": len(prompts),
        "seeds": seeds,
        "raw_damaged_fraction": sum(damaged) / len(damaged),
        "comparisons": results,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(document, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()

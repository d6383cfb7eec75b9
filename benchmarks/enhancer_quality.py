"""Intent preservation of the prompt enhancer on the evaluation prompts, before vs after SFT.

    python benchmarks/enhancer_quality.py --adapter runs/enhancer_sft/adapter

Each system rewrites every prompt of the set (shapes_eval_v1: 100 short user prompts of held-out
attribute combinations) with greedy decoding on the embedded backend. Rewrites are judged before
fallback by the world parser: a rewrite preserves intent when it states every attribute the user
stated, with the same value, and contradicts nothing. Wilson 95% intervals. Writes
docs/results/enhancer_quality.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from enhancer.embedded import EmbeddedBackend  # noqa: E402
from enhancer.evaluation import IntentReport, add_resample_options, evaluate_intent  # noqa: E402
from enhancer.prompt_enhancer import EnhancerConfig, GenerationSettings, PromptEnhancer  # noqa: E402
from vpt.eval.attributes import wilson_interval  # noqa: E402
from vpt.eval.prompt_set import load_prompt_set  # noqa: E402


def describe(name: str, report: IntentReport) -> dict[str, Any]:
    summary = report.summary()
    counts = summary["counts"]
    summary["preservation_ci95"] = wilson_interval(counts["preserved"], report.prompts)
    summary["attribute_keep_ci95"] = wilson_interval(
        counts["attributes_kept"], counts["attributes_stated"]
    )
    summary["examples"] = report.examples
    print(
        f"{name:>10}: intent preserved {summary['preservation_rate']:.1%} "
        f"[{summary['preservation_ci95'][0]:.1%}, {summary['preservation_ci95'][1]:.1%}], "
        f"attributes kept {summary['attribute_keep_rate']:.1%}, "
        f"contradictions {summary['contradiction_rate']:.1%}, "
        f"used (not fallen back) {summary['accepted_rate']:.1%}, "
        f"all six stated {summary['complete_rate']:.1%}, "
        f"{summary['mean_words']:.1f} words, {summary['seconds_per_prompt']:.2f} s/prompt"
    )
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--adapter", required=True, help="trained LoRA adapter folder")
    parser.add_argument("--base-model", help="base model folder (default: converted SmolLM2)")
    parser.add_argument("--prompts", default="shapes_eval_v1", help="prompt set name or file")
    parser.add_argument("--limit", type=int, default=0, help="use only the first N prompts")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    add_resample_options(parser)
    parser.add_argument("--out", default=str(ROOT / "docs/results/enhancer_quality.json"))
    parser.add_argument("--name", default="sft", help="how the results name the adapter")
    parser.add_argument(
        "--no-base", action="store_true", help="skip the untrained model (measured before)"
    )
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("VPT_THREADS", "1")))
    torch.manual_seed(args.sampling_seed)
    prompt_set = load_prompt_set(args.prompts)
    prompts = list(prompt_set.prompts[: args.limit or None])
    settings = GenerationSettings(max_new_tokens=args.max_new_tokens)
    config = EnhancerConfig(
        timeout_s=600.0, generation=settings, resample_attempts=args.resample_attempts
    )
    results: dict[str, Any] = {
        "prompt_set": prompt_set.name,
        "prompts": len(prompts),
        "decoding": "greedy",
        "resample_attempts": args.resample_attempts,
        "resample_temperature": EnhancerConfig.resample_temperature,
        "sampling_seed": args.sampling_seed,
        "max_new_tokens": args.max_new_tokens,
        "threads": torch.get_num_threads(),
        "systems": {},
    }
    systems = [("base", None)] if not args.no_base else []
    for name, adapter in [*systems, (args.name, args.adapter)]:
        backend = EmbeddedBackend.load(args.base_model, adapter, settings)
        started = time.monotonic()
        report = evaluate_intent(PromptEnhancer(backend, config), prompts, args.batch_size)
        results["systems"][name] = {
            "adapter": adapter,
            "wall_seconds": round(time.monotonic() - started, 1),
            **describe(name, report),
        }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

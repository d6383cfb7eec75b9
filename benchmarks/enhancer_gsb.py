"""GSB of the generator with a prompt enhancer in front vs the same generator alone, on the same
user prompts and seeds, scored by the held-out judge against the *user's* prompts.

    python benchmarks/enhancer_gsb.py --adapter runs/enhancer_sft/adapter    # the SFT enhancer
    python benchmarks/enhancer_gsb.py --adapter none --out docs/results/enhancer_gsb_base

`--adapter none` is the honest baseline: the untrained instruct model as enhancer; `--adapter
suffix` is the rule-based one (`enhancer.suffix`: the user's prompt plus quality words). Greedy
rewrites on the embedded backend; a rewrite the intent check rejects falls back to the user's
prompt, exactly as in serving. Writes gsb.json, gsb.md, pairs.png and enhanced_prompts.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from enhancer.embedded import EmbeddedBackend  # noqa: E402
from enhancer.evaluation import add_resample_options  # noqa: E402
from enhancer.prompt_enhancer import EnhancerConfig, PromptEnhancer, RewriteBackend  # noqa: E402
from enhancer.suffix import DEFAULT_SUFFIX, SuffixBackend  # noqa: E402
from enhancer.system import EnhancedSystem  # noqa: E402
from vpt.cli.main import DEFAULT_MODEL  # noqa: E402
from vpt.eval.comparison import compare_systems, save_pair_sheet  # noqa: E402
from vpt.eval.prompt_set import load_prompt_set  # noqa: E402
from vpt.eval.systems import load_systems  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--adapter", required=True, help="LoRA adapter folder, `none` (untrained) or `suffix`"
    )
    parser.add_argument("--model", default=str(DEFAULT_MODEL), help="generator checkpoint")
    parser.add_argument("--prompts", default="shapes_eval_v1")
    parser.add_argument("--limit", type=int, default=0, help="use only the first N prompts")
    parser.add_argument("--seeds", type=int, default=2)
    add_resample_options(parser)
    parser.add_argument("--out", default=str(ROOT / "docs/results/enhancer_gsb_sft"))
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("VPT_THREADS", "1")))
    torch.manual_seed(args.sampling_seed)
    adapter = None if args.adapter in ("none", "suffix") else args.adapter
    prompt_set = load_prompt_set(args.prompts)
    prompts = list(prompt_set.prompts[: args.limit or None])
    (plain,) = load_systems([args.model])
    if args.adapter == "suffix":
        backend: RewriteBackend = SuffixBackend()
        label = f"{args.model} + enhancer(suffix: {DEFAULT_SUFFIX!r})"
    else:
        backend = EmbeddedBackend.load(None, adapter)
        label = f"{args.model} + enhancer({adapter or 'untrained SmolLM2'})"
    enhancer = PromptEnhancer(
        backend, EnhancerConfig(timeout_s=600, resample_attempts=args.resample_attempts)
    )
    enhanced = EnhancedSystem(enhancer, plain, name=label)
    started = time.monotonic()
    comparison = compare_systems(enhanced, plain, prompts, list(range(args.seeds)))
    seconds = time.monotonic() - started
    report = replace(comparison.report, prompt_set=prompt_set.name)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    document = {
        **report.to_dict(),
        "wall_seconds": round(seconds, 1),
        "adapter": adapter,
        "resample_attempts": args.resample_attempts,
        "sampling_seed": args.sampling_seed,
    }
    (out / "gsb.json").write_text(json.dumps(document, indent=2) + "\n")
    (out / "gsb.md").write_text(report.to_markdown())
    save_pair_sheet(comparison, out / "pairs.png", pairs=6)
    rewrites = [asdict(enhanced.enhanced[p]) for p in prompts]
    (out / "enhanced_prompts.json").write_text(json.dumps(rewrites, indent=2) + "\n")
    used = sum(not r["fell_back"] for r in rewrites)
    print(report.to_markdown(), end="")
    print(f"rewrites used: {used}/{len(prompts)}; {seconds:.0f} s; wrote {out}")


if __name__ == "__main__":
    main()

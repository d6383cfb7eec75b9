"""The training curve of an enhancer GRPO run: per-step rollout figures from its metrics.jsonl,
averaged over the first and the last few steps (rollouts are sampled at temperature, so single
steps are noisy).

    python benchmarks/enhancer_grpo_curve.py --run-dir runs/enhancer_grpo

Prints a table and writes docs/results/enhancer_grpo_training.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
FIGURES = (
    "accepted",
    "contradicted",
    "format_failed",
    "rewrite_words",
    "video_text_alignment",
    "video_visual_quality",
    "video_motion_quality",
    "video_structural",
    "kl",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run-dir", default=str(ROOT / "runs/enhancer_grpo"))
    parser.add_argument("--window", type=int, default=5, help="steps averaged at each end")
    parser.add_argument("--out", default=str(ROOT / "docs/results/enhancer_grpo_training.json"))
    args = parser.parse_args()
    metrics_file = Path(args.run_dir) / "metrics.jsonl"
    if not metrics_file.is_file():
        raise SystemExit(f"error: {metrics_file} does not exist; give the --run-dir of a run")
    by_step: dict[int, dict[str, float]] = {}
    for line in metrics_file.read_text().splitlines():
        record = json.loads(line)
        if "accepted" in record:  # a resumed step is logged again: keep the last
            by_step[int(record["step"])] = record
    steps = sorted(by_step)
    if len(steps) < 2 * args.window:
        raise SystemExit(f"error: {len(steps)} steps logged, need at least {2 * args.window}")
    first, last = steps[: args.window], steps[-args.window :]
    summary = {}
    print(f"{'figure':>22}  steps {first[0]}-{first[-1]}  steps {last[0]}-{last[-1]}")
    for name in FIGURES:
        begin = float(np.mean([by_step[s].get(name, np.nan) for s in first]))
        end = float(np.mean([by_step[s].get(name, np.nan) for s in last]))
        summary[name] = {"first": round(begin, 4), "last": round(end, 4)}
        print(f"{name:>22}  {begin:12.3f}  {end:12.3f}")
    cpu = by_step[steps[-1]].get("cpu_seconds")
    wall = by_step[steps[-1]]["time"] - by_step[steps[0]]["time"]
    document = {
        "run_dir": args.run_dir,
        "steps": len(steps),
        "window": args.window,
        "first_steps": first,
        "last_steps": last,
        "figures": summary,
        "cpu_seconds": cpu,
        "wall_seconds_between_first_and_last_log": round(wall, 1),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(document, indent=2) + "\n")
    print(f"{len(steps)} steps, {cpu} CPU-s; wrote {out}")


if __name__ == "__main__":
    main()

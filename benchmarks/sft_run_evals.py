"""Collect the held-out evaluations that `vpt train sft` logged during and at the end of runs.

An SFT run evaluates its EMA weights on `eval_prompts` held-out prompts (prompt-set seed 9000,
one seed each, the checkpoint's default sampler) every `eval_every` steps and writes the
accuracies to `RUN/metrics.jsonl`; run folders are not kept in git, so this copies those lines,
the run's CPU time and its recipe differences into one JSON under docs/results/.

    python benchmarks/sft_run_evals.py runs/sft_fn runs/sft_fn_control \
        --out docs/results/sft_frame_noise_runs.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def run_summary(run_dir: Path) -> dict[str, Any]:
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    evaluations = [
        {"step": line["step"], **{k[5:]: v for k, v in line.items() if k.startswith("eval_")}}
        for line in lines
        if any(key.startswith("eval_") for key in line)
    ]
    config = json.loads((run_dir / "config.json").read_text())
    manifest_file = run_dir / "checkpoint" / "manifest.json"
    manifest = json.loads(manifest_file.read_text()) if manifest_file.is_file() else {}
    return {
        "run_dir": str(run_dir),
        "version": manifest.get("version"),
        "parent": manifest.get("parent"),
        "steps": manifest.get("steps"),
        "cpu_seconds": manifest.get("metrics", {}).get("cpu_seconds"),
        "final_loss": manifest.get("metrics", {}).get("final_loss"),
        "frame_noise": config.get("frame_noise"),
        "eval_prompts": config.get("eval_prompts"),
        "evaluations": evaluations,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", nargs="+", type=Path)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    result = {"runs": [run_summary(run_dir) for run_dir in args.run_dirs]}
    print(json.dumps(result, indent=1))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()

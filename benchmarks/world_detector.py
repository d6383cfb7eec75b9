"""Shapes-world benchmark: detector accuracy per attribute on clean and defective clips,
Spearman of each defect measure against the true level, clean-vs-defective AUC, and render and
detection throughput on one core, at 32x32x16 and 64x64x24.

    python benchmarks/world_detector.py --clips 500 --json docs/results/world_detector.json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vpt.world.detector_quality import evaluate
from vpt.world.render import WorldConfig


def main(argv: Sequence[str] | None = None) -> None:
    """Print (and optionally save as JSON) the benchmark at 32x32x16 and 64x64x24."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clips", type=int, default=500, help="clean and defective clips each")
    parser.add_argument("--json", type=Path, default=None, help="where to write the figures")
    args = parser.parse_args(argv)
    results = [
        evaluate(WorldConfig(), args.clips),
        evaluate(WorldConfig(frames=24, height=64, width=64), max(args.clips // 4, 20)),
    ]
    print(json.dumps(results, indent=2))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

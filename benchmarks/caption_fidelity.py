"""How often the training data's captions state the motion the clip really shows.

    python benchmarks/caption_fidelity.py --clips 400

Rules out the data as the reason the generator ignores direction words (docs/generator.md): for
clips of the SFT recipe's world (30% defects, caption mismatches included), the fraction whose
caption names a direction, whose parsed direction equals the clip's true direction, and whose
detector reading agrees with the truth. Writes JSON to docs/results/.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vpt.world.dataset import ShapesWorld  # noqa: E402
from vpt.world.detector import detect  # noqa: E402
from vpt.world.parser import parse_prompt  # noqa: E402
from vpt.world.render import WorldConfig  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clips", type=int, default=400)
    parser.add_argument("--defect-fraction", type=float, default=0.3, help="the SFT recipe's")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="docs/results/caption_fidelity.json")
    args = parser.parse_args()
    if args.clips < 1:
        raise SystemExit(f"--clips must be >= 1, got {args.clips}")
    world = ShapesWorld(
        WorldConfig(frames=16, height=32, width=32, fps=8, defect_fraction=args.defect_fraction),
        seed=args.seed,
    )
    stated = parsed_true = detected_true = 0
    for index in range(args.clips):
        clip = world[index]
        parsed = parse_prompt(clip.caption).attributes.direction
        if parsed is None:
            continue
        stated += 1
        parsed_true += parsed == clip.attributes.direction
        detected_true += detect(clip.frames).attributes.direction == clip.attributes.direction
    result = {
        "clips": args.clips,
        "defect_fraction": args.defect_fraction,
        "seed": args.seed,
        "captions_naming_a_direction": stated,
        "caption_direction_is_true": parsed_true / max(stated, 1),
        "detector_direction_is_true": detected_true / max(stated, 1),
    }
    print(json.dumps(result, indent=2))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""How much the latent autoencoder loses: encode -> decode held-out world clips and measure the
pixel error and whether the analytic detector still reads every attribute.

    python benchmarks/autoencoder_quality.py --vae runs/autoencoder/vae
    python benchmarks/autoencoder_quality.py          # the shipped default model's autoencoder
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vpt.checkpoint import load_autoencoder
from vpt.cli.main import DEFAULT_MODEL
from vpt.generator import pixels_to_uint8, uint8_to_pixels
from vpt.world import WorldConfig, detect_batch, render_clean
from vpt.world.splits import held_out_combinations
from vpt.world.vocabulary import AttributeName


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--vae", default=str(DEFAULT_MODEL / "vae"))
    parser.add_argument("--clips", type=int, default=129, help="held-out combinations rendered")
    parser.add_argument("--out", default="docs/results/autoencoder_quality.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    autoencoder = load_autoencoder(args.vae).eval()
    combinations = held_out_combinations()[: args.clips]
    clips = np.stack([render_clean(a, i, WorldConfig()) for i, a in enumerate(combinations)])
    with torch.no_grad():
        decoded = pixels_to_uint8(autoencoder.decode(autoencoder.encode(uint8_to_pixels(clips))))
    result: dict[str, object] = {
        "vae": args.vae,
        "clips": len(combinations),
        "mean_abs_error_uint8": round(float(np.abs(decoded.astype(float) - clips).mean()), 3),
    }
    pairs = (("detector_on_originals", clips), ("detector_on_reconstructions", decoded))
    for name, videos in pairs:
        detections = detect_batch(list(videos))
        result[name] = {
            attribute.value: round(
                float(
                    np.mean(
                        [
                            d.attributes.get(attribute) == a.get(attribute)
                            for d, a in zip(detections, combinations, strict=True)
                        ]
                    )
                ),
                4,
            )
            for attribute in AttributeName
        }
    print(json.dumps(result, indent=2))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""How much does a generator's flow-matching loss rely on the prompt's direction word?

For clean rendered clips with detailed captions, the loss is computed twice at the same noise
and noise levels: with the true caption, and with the same caption naming the opposite
direction. The gap (swapped - true) is what the direction word is worth to the network. Two
noise schemes (vpt.training.frame_noise):
- `one_sigma`: one sigma per clip from the recipe's training density (how SFT trains and how
  the sampler runs);
- `clean_prefix`: frames before a random cut nearly clean (sigma <= 0.1), the rest at the
  clip's sigma (Diffusion-Forcing-style training);
- `independent`: every transformer frame at its own sigma from the training density.
Hypothesis under test (docs/generator.md item 9): with one sigma the direction word barely
lowers the loss; with a clean prefix it matters.

    python benchmarks/direction_loss_gap.py --checkpoint vpt/assets/models/shapes-default \
        --out docs/results/direction_loss_gap_shipped.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vpt.checkpoint import load_generator  # noqa: E402
from vpt.generator import Generator, uint8_to_pixels  # noqa: E402
from vpt.sampling import TimestepSamplingConfig, sample_training_sigmas  # noqa: E402
from vpt.training.flow_matching import flow_matching_loss  # noqa: E402
from vpt.training.frame_noise import FrameNoiseConfig, per_frame_sigmas  # noqa: E402
from vpt.world import WorldConfig  # noqa: E402
from vpt.world.captions import detailed_caption  # noqa: E402
from vpt.world.dataset import render_clean  # noqa: E402
from vpt.world.vocabulary import (  # noqa: E402
    Attributes,
    Background,
    Color,
    Direction,
    Shape,
    Size,
    Speed,
)

OPPOSITE = {
    Direction.LEFT: Direction.RIGHT,
    Direction.RIGHT: Direction.LEFT,
    Direction.UP: Direction.DOWN,
    Direction.DOWN: Direction.UP,
}
TRAINING_DENSITY = TimestepSamplingConfig(kind="logit_normal", shift=3.0)
SCHEMES = {
    "one_sigma": FrameNoiseConfig(fraction=0.0),
    "clean_prefix": FrameNoiseConfig(fraction=1.0, kind="clean_prefix", prefix_sigma_max=0.1),
    "independent": FrameNoiseConfig(fraction=1.0, kind="independent"),
}


def random_attributes(rng: np.random.Generator) -> Attributes:
    color = Color(rng.choice(list(Color)))
    backgrounds = [b for b in Background if b.value != color.value]
    return Attributes(
        shape=Shape(rng.choice(list(Shape))),
        color=color,
        size=Size(rng.choice(list(Size))),
        direction=Direction(rng.choice(list(Direction))),
        speed=Speed(rng.choice(list(Speed))),
        background=Background(rng.choice(backgrounds)),
    )


def mean_and_standard_error(values: torch.Tensor) -> dict[str, float]:
    return {
        "mean": round(float(values.mean()), 5),
        "standard_error": round(float(values.std() / math.sqrt(len(values))), 5),
    }


def caption_loss(
    generator: Generator,
    x0: torch.Tensor,
    noise: torch.Tensor,
    sigma: torch.Tensor,
    text: torch.Tensor,
) -> torch.Tensor:
    """Per-clip flow-matching loss with the given text embeddings."""
    return flow_matching_loss(lambda x, s: generator.velocity(x, s, text), x0, noise, sigma)


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="vpt/assets/models/shapes-default")
    parser.add_argument("--clips", type=int, default=128)
    parser.add_argument("--draws", type=int, default=4, help="noise draws per clip and scheme")
    parser.add_argument("--seed", type=int, default=31)
    parser.add_argument("--out", default="docs/results/direction_loss_gap.json")
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("VPT_THREADS", "1")))
    generator = load_generator(args.checkpoint).generator.eval()
    geometry = generator.config.geometry
    world = WorldConfig(frames=geometry.frames, height=geometry.height, width=geometry.width)
    rng = np.random.default_rng(args.seed)
    true_captions, swapped_captions, videos = [], [], []
    for index in range(args.clips):
        attributes = random_attributes(rng)
        swapped = dataclasses.replace(attributes, direction=OPPOSITE[attributes.direction])
        caption_seed = int(rng.integers(2**31))
        true_captions.append(detailed_caption(attributes, np.random.default_rng(caption_seed)).text)
        swapped_captions.append(detailed_caption(swapped, np.random.default_rng(caption_seed)).text)
        videos.append(render_clean(attributes, args.seed * 100_000 + index, world))
    x0 = generator.autoencoder.encode(uint8_to_pixels(np.stack(videos)).to(generator.device))
    text_true = generator.encode_prompts(true_captions)
    text_swapped = generator.encode_prompts(swapped_captions)
    frames = x0.shape[2] // generator.transformer.config.patch_size[0]

    result: dict[str, object] = {
        "checkpoint": args.checkpoint,
        "clips": args.clips,
        "draws": args.draws,
        "example_caption_pair": [true_captions[0], swapped_captions[0]],
    }
    for name, scheme in SCHEMES.items():
        noise_rng = torch.Generator().manual_seed(args.seed)
        true_losses, gaps = [], []
        for _ in range(args.draws):
            for start in range(0, args.clips, 32):
                batch = slice(start, start + 32)
                clean = x0[batch]
                sigma = sample_training_sigmas(len(clean), TRAINING_DENSITY, noise_rng)
                noise = torch.randn(clean.shape, generator=noise_rng)
                if scheme.is_enabled:
                    sigma = per_frame_sigmas(sigma, frames, scheme, TRAINING_DENSITY, noise_rng)
                loss_true = caption_loss(generator, clean, noise, sigma, text_true[batch])
                loss_swapped = caption_loss(generator, clean, noise, sigma, text_swapped[batch])
                true_losses.append(loss_true)
                gaps.append(loss_swapped - loss_true)
        true_all, gap_all = torch.cat(true_losses), torch.cat(gaps)
        result[name] = {
            "loss_true_caption": mean_and_standard_error(true_all),
            "loss_gap_opposite_direction": mean_and_standard_error(gap_all),
            "relative_gap": round(float(gap_all.mean() / true_all.mean()), 5),
        }
    print(json.dumps(result, indent=1))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()

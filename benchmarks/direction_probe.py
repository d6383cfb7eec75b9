"""Does a generator take motion direction from the prompt or from the seed?

Two probes of one checkpoint:
1. *Sampling*: one prompt template rendered with each of the four directions, each with the same
   seeds. For every seed it records the direction the analytic detector reads in the four
   videos. A model that follows the prompt reads four different directions per seed; a model
   that takes direction from its initial noise reads the same one whatever the prompt says.
2. *Velocity*: the relative change of the network's velocity at a fixed noisy input when only
   the direction word of the prompt changes, against when only the colour word changes, at
   several noise levels.

    python benchmarks/direction_probe.py --checkpoint vpt/assets/models/shapes-default \
        --out docs/results/direction_probe.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from pathlib import Path

import torch

from vpt.checkpoint import load_generator
from vpt.world.detector import detect

TEMPLATE = "a large {color} circle moving {direction} quickly over a black background"
DIRECTIONS = ("left", "right", "up", "down")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="vpt/assets/models/shapes-default")
    parser.add_argument("--seeds", type=int, default=16)
    parser.add_argument("--guidance", type=float, default=None, help="default: the checkpoint's")
    parser.add_argument("--out", default="docs/results/direction_probe.json")
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("VPT_THREADS", "1")))
    generator = load_generator(args.checkpoint).generator
    sampler = generator.config.sampler
    if args.guidance is not None:
        sampler = dataclasses.replace(sampler, guidance_scale=args.guidance)
    seeds = list(range(args.seeds))
    read: dict[str, list[str]] = {}
    for direction in DIRECTIONS:
        prompt = TEMPLATE.format(color="red", direction=direction)
        videos = generator.generate([prompt] * len(seeds), seeds=seeds, sampler=sampler)
        read[direction] = [str(detect(video).attributes.direction) for video in videos]
    per_seed = [[read[d][i] for d in DIRECTIONS] for i in range(len(seeds))]
    correct = sum(read[d][i] == d for d in DIRECTIONS for i in range(len(seeds)))
    same_for_all_prompts = sum(len(set(row)) == 1 for row in per_seed)

    prompts = [TEMPLATE.format(color="red", direction=d) for d in DIRECTIONS]
    prompts.append(TEMPLATE.format(color="blue", direction="left"))
    text = generator.encode_prompts(prompts)
    norms = text[0].norm(dim=-1).clamp(min=1e-6)

    def token_change(i: int) -> float:
        """Largest relative change of one token's state (the swapped word's) vs prompt 0."""
        return round(float(((text[i] - text[0]).norm(dim=-1) / norms).max()), 4)

    token_state_change = {
        "left->right": token_change(1),
        "left->up": token_change(2),
        "left->down": token_change(3),
        "red->blue": token_change(4),
    }
    latents = torch.randn(
        (1, *generator.latent_shape()), generator=torch.Generator().manual_seed(0)
    )
    velocity_change: dict[str, dict[str, float]] = {}
    with torch.no_grad():
        for sigma in (0.95, 0.7, 0.4):
            sigma_B = torch.tensor([sigma])
            velocities = [generator.velocity(latents, sigma_B, text[i : i + 1]) for i in range(5)]
            reference = velocities[0].norm()
            velocity_change[str(sigma)] = {
                "direction_word": round(
                    max(float((v - velocities[0]).norm() / reference) for v in velocities[1:4]), 4
                ),
                "color_word": round(float((velocities[4] - velocities[0]).norm() / reference), 4),
            }
    result = {
        "checkpoint": args.checkpoint,
        "template": TEMPLATE,
        "seeds": len(seeds),
        "guidance_scale": sampler.guidance_scale,
        "direction_read_per_seed": per_seed,
        "direction_accuracy": round(correct / (4 * len(seeds)), 4),
        "seeds_with_same_direction_for_all_four_prompts": same_for_all_prompts,
        "relative_velocity_change": velocity_change,
        "relative_token_state_change": token_state_change,
    }
    print(json.dumps({k: v for k, v in result.items() if k != "direction_read_per_seed"}, indent=1))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()

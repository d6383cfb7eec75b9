"""Does a generator take motion direction from the prompt or from the seed?

Two probes of one checkpoint:
1. *Sampling*: one prompt template rendered with each of the four directions, each with the same
   seeds. For every seed it records the direction the analytic detector reads in the four
   videos. A model that follows the prompt reads four different directions per seed; a model
   that takes direction from its initial noise reads the same one whatever the prompt says.
2. *Velocity*: the relative change of the network's velocity at a fixed noisy input when only
   the direction word of the prompt changes, against when only the colour word changes, at
   several noise levels.
3. *Conditional mean*: near pure noise the flow-matching optimum predicts the mean of the data
   given the prompt, `x0_hat = x_t - sigma * v -> E[x0 | prompt]`, and in this world that mean
   depends strongly on the direction (a left-moving object starts on the right and ends on the
   left). Clean world clips are encoded and averaged per true direction (the data's answer), and
   the network's `x0_hat` at sigma 0.999 from each clip's own caption and one shared noise per
   clip index is averaged the same way (the network's answer). The probe reports
   `||model(left) - model(right)|| / ||data(left) - data(right)||` (1 = learned, 0 = the
   direction word is ignored) and the same ratio for two colours, and the drift of each mean's
   energy centroid (last quarter of latent frames minus first quarter, along the direction's
   axis): `drift_ratio_*` = the model's right-minus-left (down-minus-up) drift over the data's,
   1 when the network's prior moves objects the way the prompt says, 0 when it does not.

    python benchmarks/direction_probe.py --checkpoint vpt/assets/models/shapes-default \
        --out docs/results/direction_probe.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from vpt.checkpoint import load_generator
from vpt.generator import Generator, uint8_to_pixels
from vpt.world.dataset import ShapesWorld
from vpt.world.detector import detect
from vpt.world.render import WorldConfig

TEMPLATE = "a large {color} circle moving {direction} quickly over a black background"
DIRECTIONS = ("left", "right", "up", "down")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="vpt/assets/models/shapes-default")
    parser.add_argument("--seeds", type=int, default=16)
    parser.add_argument("--guidance", type=float, default=None, help="default: the checkpoint's")
    parser.add_argument(
        "--anchor-steps", type=int, default=None, help="two-pass setting; default: the checkpoint's"
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-sampling", action="store_true", help="skip probe 1 (the slow one)")
    parser.add_argument("--mean-clips", type=int, default=1024, help="clean clips for probe 3")
    parser.add_argument("--out", default="docs/results/direction_probe.json")
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("VPT_THREADS", "1")))
    generator = load_generator(args.checkpoint, args.device).generator
    sampler = generator.config.sampler
    if args.guidance is not None:
        sampler = dataclasses.replace(sampler, guidance_scale=args.guidance)
    if args.anchor_steps is not None:
        sampler = dataclasses.replace(sampler, anchor_steps=args.anchor_steps)
    seeds = list(range(args.seeds))
    read: dict[str, list[str]] = {}
    for direction in DIRECTIONS if not args.no_sampling else ():
        prompt = TEMPLATE.format(color="red", direction=direction)
        videos = generator.generate([prompt] * len(seeds), seeds=seeds, sampler=sampler)
        read[direction] = [str(detect(video).attributes.direction) for video in videos]
    per_seed = [[read[d][i] for d in read] for i in range(len(seeds))] if read else []
    correct = sum(read[d][i] == d for d in read for i in range(len(seeds)))
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
    ).to(args.device)
    velocity_change: dict[str, dict[str, float]] = {}
    with torch.no_grad():
        for sigma in (0.95, 0.7, 0.4):
            sigma_B = torch.tensor([sigma], device=args.device)
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
        "anchor_steps": sampler.anchor_steps,
        "direction_read_per_seed": per_seed,
        "direction_accuracy": round(correct / (4 * len(seeds)), 4) if read else None,
        "seeds_with_same_direction_for_all_four_prompts": same_for_all_prompts,
        "relative_velocity_change": velocity_change,
        "relative_token_state_change": token_state_change,
        "conditional_mean": conditional_mean_probe(generator, args.mean_clips),
    }
    print(json.dumps({k: v for k, v in result.items() if k != "direction_read_per_seed"}, indent=1))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))


def conditional_mean_probe(generator: Generator, clips: int, sigma: float = 0.999) -> dict:
    """Network vs data conditional means per direction (and for red vs blue); see probe 3."""
    geometry = generator.config.geometry
    world_config = WorldConfig(frames=geometry.frames, height=geometry.height, width=geometry.width)
    world = ShapesWorld(world_config, seed=77, clean_only=True)
    batch = world.batch(range(clips))
    groups = {
        "direction": lambda clip: str(clip.attributes.direction),
        "color": lambda clip: str(clip.attributes.color),
    }
    data_sum: dict[str, Tensor] = {}
    model_sum: dict[str, Tensor] = {}
    counts: dict[str, int] = {}
    device = next(generator.transformer.parameters()).device
    noise_all = torch.randn(
        (clips, *generator.latent_shape()), generator=torch.Generator().manual_seed(1)
    ).to(device)
    with torch.no_grad():
        for start in range(0, clips, 64):
            chunk = batch.clips[start : start + 64]
            pixels = uint8_to_pixels(np.stack([c.frames for c in chunk])).to(device)
            x0 = generator.autoencoder.encode(pixels)
            text = generator.encode_prompts([c.caption for c in chunk])
            noise = noise_all[start : start + len(chunk)]
            x_t = (1 - sigma) * x0 + sigma * noise
            v = generator.velocity(x_t, torch.full((len(chunk),), sigma, device=device), text)
            x0_hat = x_t - sigma * v
            for i, clip in enumerate(chunk):
                for name, key_of in groups.items():
                    key = f"{name}:{key_of(clip)}"
                    data_sum[key] = data_sum.get(key, 0) + x0[i].float().cpu()
                    model_sum[key] = model_sum.get(key, 0) + x0_hat[i].float().cpu()
                    counts[key] = counts.get(key, 0) + 1

    def mean(table: dict[str, Tensor], key: str) -> Tensor:
        return table[key] / counts[key]

    def ratio(a: str, b: str) -> float:
        model = (mean(model_sum, a) - mean(model_sum, b)).norm()
        data = (mean(data_sum, a) - mean(data_sum, b)).norm()
        return round(float(model / data), 4)

    def centroid(latent_CFHW: Tensor, axis: int) -> Tensor:
        """Energy centroid along columns (axis -1) or rows (axis -2), per latent frame."""
        energy = latent_CFHW.norm(dim=0)
        weight = (energy - energy.mean()).clamp(min=0)
        profile = weight.sum(dim=-1 if axis == -2 else -2)  # (F, H) or (F, W)
        index = torch.arange(profile.shape[-1], dtype=profile.dtype)
        return (profile * index).sum(-1) / profile.sum(-1).clamp(min=1e-6)

    def drift(table: dict[str, Tensor], direction: str, axis: int) -> float:
        """Centroid of the last quarter of latent frames minus that of the first quarter."""
        track = centroid(mean(table, f"direction:{direction}"), axis)
        quarter = max(1, len(track) // 4)
        return float(track[-quarter:].mean() - track[:quarter].mean())

    drifts = {
        source: {
            "left": drift(table, "left", -1),
            "right": drift(table, "right", -1),
            "up": drift(table, "up", -2),
            "down": drift(table, "down", -2),
        }
        for source, table in (("data", data_sum), ("model", model_sum))
    }

    def drift_ratio(a: str, b: str) -> float:
        data = drifts["data"][b] - drifts["data"][a]
        return round((drifts["model"][b] - drifts["model"][a]) / data, 4)

    return {
        "sigma": sigma,
        "clips": clips,
        "drift_ratio_left_right": drift_ratio("left", "right"),
        "drift_ratio_up_down": drift_ratio("up", "down"),
        "mean_norm_ratio_left_right": ratio("direction:left", "direction:right"),
        "mean_norm_ratio_red_blue": ratio("color:red", "color:blue"),
        "drift_latent_cells": {
            source: {k: round(v, 3) for k, v in table.items()} for source, table in drifts.items()
        },
        "centroid_x_per_latent_frame": {
            f"{source}:{d}": [
                round(float(c), 2) for c in centroid(mean(table, f"direction:{d}"), -1)
            ]
            for source, table in (("data", data_sum), ("model", model_sum))
            for d in ("left", "right")
        },
    }


if __name__ == "__main__":
    main()

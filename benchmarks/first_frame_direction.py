"""Does conditioning on a clean first frame make the generator follow the prompt's direction?

An image-to-video-style fine-tune of a checkpoint, run as an experiment (nothing ships from it):
for a `--fraction` of each batch the first latent frame is given clean (replacement
conditioning, as Wan's image-to-video model conditions on a first frame) and left out of the
loss. Given one clean frame, the object's position is known but not its motion, so the prompt is
the only source of the direction: the loss is worth lowering only by reading the direction word,
unlike plain text-to-video, where the direction word is worth nothing measurable to the loss
(benchmarks/direction_loss_gap.py). `--high-noise` adds that share of sigmas drawn uniformly from
[0.9, 1), where the trajectory is decided. Every `--eval-every` steps the EMA weights sample 48
held-out clean clips' captions twice: with their true first latent frame held fixed (image-to-
video) and from pure noise (text-to-video); the analytic detector reads the direction.

    python benchmarks/first_frame_direction.py --steps 500 --fraction 0.5 --high-noise 0.5 \
        --out docs/results/first_frame_direction_cpu.json
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from vpt.checkpoint import load_generator
from vpt.config import load_config
from vpt.generator import Generator, uint8_to_pixels
from vpt.sampling import TimestepSamplingConfig, sample_training_sigmas, sampling_sigmas
from vpt.sampling.ode import euler_step
from vpt.training.latent_data import build_latent_dataset
from vpt.training.sft import SFTConfig
from vpt.world.dataset import ShapesWorld
from vpt.world.detector import detect
from vpt.world.render import WorldConfig


@torch.no_grad()
def sample(generator: Generator, prompts: list[str], first: Tensor | None) -> np.ndarray:
    """Default sampler (30 Euler steps, shift 3, CFG 4); `first` is held fixed as latent frame 0."""
    settings = generator.config.sampler
    text = generator.encode_prompts(prompts)
    negative = generator.encode_prompts([generator.config.negative_prompt] * len(prompts))
    velocity = generator.guided_velocity_fn(text, negative, settings.guidance_scale)
    x = generator.initial_noise(list(range(len(prompts))))
    sigmas = sampling_sigmas(settings.num_steps, settings.shift).to(x.device)
    for i in range(settings.num_steps):
        if first is not None:
            x[:, :, :1] = first
        x = euler_step(x, velocity(x, sigmas[i].expand(len(x))), sigmas[i], sigmas[i + 1])
    if first is not None:
        x[:, :, :1] = first
    return generator.decode(x)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="vpt/assets/models/shapes-default")
    parser.add_argument("--recipe", default="recipes/shapes_sft.yaml", help="its data: clips")
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--fraction", type=float, default=0.5, help="share with a clean frame 0")
    parser.add_argument("--high-noise", type=float, default=0.0, help="share from U[0.9, 1)")
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--eval-every", type=int, default=250)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--work", default="runs/first_frame_direction")
    parser.add_argument("--out", default="docs/results/first_frame_direction.json")
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("VPT_THREADS", "1")))
    generator = load_generator(args.checkpoint, args.device).generator
    data_config = load_config(SFTConfig, args.recipe, []).data
    dataset = build_latent_dataset(data_config, generator.autoencoder, Path(args.work) / "data")
    transformer = generator.transformer
    ema = copy.deepcopy(transformer).requires_grad_(False)
    optimizer = torch.optim.AdamW(
        transformer.parameters(), lr=args.lr, weight_decay=0.01, betas=(0.9, 0.99)
    )
    timesteps = TimestepSamplingConfig(
        kind="logit_normal", shift=3.0, high_noise_fraction=args.high_noise, high_noise_min=0.9
    )
    rng = torch.Generator().manual_seed(0)
    world = ShapesWorld(WorldConfig(), seed=77, clean_only=True)
    clips = [world[i] for i in range(48)]
    pixels = uint8_to_pixels(np.stack([c.frames for c in clips])).to(args.device)
    with torch.no_grad():
        first_frames = generator.autoencoder.encode(pixels)[:, :, :1]
    captions = [c.caption for c in clips]
    truth = [str(c.attributes.direction) for c in clips]

    def evaluate(step: int) -> dict[str, float]:
        generator.transformer = ema
        result: dict[str, float] = {"step": step}
        for mode, first in (("image_to_video", first_frames), ("text_to_video", None)):
            videos = sample(generator, captions, first)
            read = [str(detect(v).attributes.direction) for v in videos]
            hits = [r == t for r, t in zip(read, truth, strict=True)]
            result[f"{mode}_direction"] = round(float(np.mean(hits)), 4)
        generator.transformer = transformer
        print(json.dumps(result), flush=True)
        return result

    started = time.monotonic()
    losses: list[float] = []
    evaluations: list[dict[str, float]] = []

    def write(step: int) -> None:
        """The results so far (rewritten after every evaluation: a killed run keeps them)."""
        document = {
            "checkpoint": args.checkpoint,
            "device": args.device,
            "steps_done": step,
            "steps": args.steps,
            "batch_size": args.batch_size,
            "fraction": args.fraction,
            "high_noise": args.high_noise,
            "lr": args.lr,
            "seconds": round(time.monotonic() - started, 1),
            "loss_first_50": round(float(np.mean(losses[:50])), 4) if losses else None,
            "loss_last_50": round(float(np.mean(losses[-50:])), 4) if losses else None,
            "evaluations": evaluations,
        }
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(document, indent=1) + "\n")

    evaluations.append(evaluate(0))
    write(0)
    for step in range(1, args.steps + 1):
        index = torch.randint(0, len(dataset), (args.batch_size,), generator=rng)
        x0 = dataset.get(index).float().to(args.device)
        dropped = torch.rand(args.batch_size, generator=rng) < 0.1
        text = generator.encode_prompts(
            [
                generator.config.negative_prompt if drop else dataset.captions[int(i)]
                for i, drop in zip(index, dropped.tolist(), strict=True)
            ]
        )
        sigma = sample_training_sigmas(args.batch_size, timesteps, rng).to(args.device)
        noise = torch.randn(x0.shape, generator=rng).to(args.device)
        s = sigma.view(-1, 1, 1, 1, 1)
        x_t = (1 - s) * x0 + s * noise
        conditioned = (torch.rand(args.batch_size, generator=rng) < args.fraction).to(args.device)
        x_t[conditioned, :, :1] = x0[conditioned, :, :1]
        error = (generator.velocity(x_t, sigma, text) - (noise - x0)).pow(2)
        weight = torch.ones_like(error)
        weight[conditioned, :, :1] = 0
        loss = (error * weight).sum() / weight.sum()
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(transformer.parameters(), 1.0)
        optimizer.step()
        with torch.no_grad():
            for averaged, live in zip(ema.parameters(), transformer.parameters(), strict=True):
                averaged.lerp_(live, 0.01)
        losses.append(float(loss.detach()))
        if step % args.eval_every == 0 or step == args.steps:
            evaluations.append(evaluate(step))
            write(step)


if __name__ == "__main__":
    main()

"""Where a generator loses the judge's points: the mean of every judge factor on the eval prompts.

    python benchmarks/judge_factors.py --model runs/shapes-sft-v5/checkpoint \
        --out docs/results/judge_factors_v5.json
    python benchmarks/judge_factors.py --model runs/shapes-sft-v5/checkpoint \
        --rewrites docs/results/enhancer_gsb_grpo_v5/enhanced_prompts.json \
        --out docs/results/judge_factors_v5_enhanced.json
    python benchmarks/judge_factors.py --model runs/shapes-sft-v5/checkpoint --vae-roundtrip \
        --out docs/results/judge_factors_v5_vae_roundtrip.json

The judge (`vpt.eval.judge`) scores visual and motion quality as products of factors (blur,
noise, jitter, flicker, ...). This prints, per factor, the mean and the share of videos below
0.5, for the first `--limit` prompts of the packaged eval set (seed 0 each):

- the model's own videos of the user prompts (the judge's register);
- `--rewrites FILE`: the model's videos of each prompt's rewrite (an `enhanced_prompts.json`
  that `benchmarks/enhancer_gsb.py` wrote), judged against the *user* prompt;
- `--vae-roundtrip`: no generation: clean world renders of the prompts, encoded and decoded by
  the model's autoencoder. Its visual and motion scores are the ceiling a generator working in
  that latent space can reach.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vpt.checkpoint import load_generator  # noqa: E402
from vpt.eval.judge import JudgeScores, judge_videos  # noqa: E402
from vpt.eval.prompt_set import load_prompt_set  # noqa: E402
from vpt.eval.reference_renders import render_reference  # noqa: E402
from vpt.eval.systems import load_systems  # noqa: E402
from vpt.generator import pixels_to_uint8, uint8_to_pixels  # noqa: E402
from vpt.world.parser import parse_prompt  # noqa: E402
from vpt.world.render import WorldConfig  # noqa: E402


def summarise(scores: list[JudgeScores]) -> dict[str, dict[str, float]]:
    """Mean and share below 0.5 of each dimension and each factor."""
    table: dict[str, list[float]] = {"visual": [], "motion": [], "text": []}
    for score in scores:
        for name in ("visual", "motion", "text"):
            table[name].append(getattr(score, name))
        for name, value in score.factors.items():
            table.setdefault(f"factor_{name}", []).append(value)
    return {
        name: {"mean": float(np.mean(values)), "below_half": float(np.mean(np.less(values, 0.5)))}
        for name, values in table.items()
    }


def vae_roundtrip(model: str, prompts: list[str]) -> np.ndarray:
    """Clean renders of the prompts (seed = index), through the model's autoencoder and back."""
    generator = load_generator(model).generator
    geometry = generator.config.geometry
    config = WorldConfig(
        frames=geometry.frames, height=geometry.height, width=geometry.width, defect_fraction=0.0
    )
    renders = np.stack(
        [
            render_reference(parse_prompt(p).attributes, i, config, None)
            for i, p in enumerate(prompts)
        ]
    )
    with torch.no_grad():
        latents = generator.autoencoder.encode(uint8_to_pixels(renders))
        return pixels_to_uint8(generator.autoencoder.decode(latents))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True, help="checkpoint folder")
    parser.add_argument("--prompt-set", default="shapes_eval_v1")
    parser.add_argument("--limit", type=int, default=100, help="first N prompts of the set")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--rewrites", help="enhanced_prompts.json: generate from the rewrites")
    source.add_argument(
        "--vae-roundtrip", action="store_true", help="clean renders through the VAE"
    )
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    if args.limit < 1:
        parser.error(f"--limit must be >= 1, got {args.limit}")
    if args.rewrites and not Path(args.rewrites).is_file():
        parser.error(f"--rewrites {args.rewrites}: no such file")
    torch.set_num_threads(1)
    user_prompts = list(load_prompt_set(args.prompt_set).prompts)[: args.limit]
    started = time.process_time()
    if args.vae_roundtrip:
        videos = vae_roundtrip(args.model, user_prompts)
        condition = "vae_roundtrip"
    else:
        prompts = user_prompts
        condition = "user_prompts"
        if args.rewrites:
            entries = json.loads(Path(args.rewrites).read_text())
            rewrites = {entry["user_prompt"]: entry["prompt"] for entry in entries}
            missing = [p for p in user_prompts if p not in rewrites]
            if missing:
                parser.error(
                    f"{args.rewrites} has no rewrite of {len(missing)} prompts, e.g. {missing[0]!r}"
                )
            prompts = [rewrites[p] for p in user_prompts]
            condition = "rewrites"
        (system,) = load_systems([args.model])
        videos = system.generate(prompts, [0] * len(prompts))
    summary = summarise(judge_videos(videos, user_prompts))
    result = {
        "model": args.model,
        "condition": condition,
        "rewrites": args.rewrites,
        "prompt_set": args.prompt_set,
        "prompts": len(user_prompts),
        "cpu_seconds": time.process_time() - started,
        "scores": summary,
    }
    for name, row in summary.items():
        print(f"{name:20s} mean {row['mean']:.3f}   below 0.5: {100 * row['below_half']:5.1f}%")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""Held-out quality of the shipped rewards against the shapes world's true labels.

On clips of the world's held-out attribute combinations (never in reward training), scored
through the default ONNX backend:
- visual / motion quality: Spearman of the score with minus the true defect severity, per
  defect, clean-vs-defective AUROC, and the mean score of clean clips vs clips with only the
  other dimension's defects (leakage);
- text alignment: AUROC of matched vs hard-negative captions (one attribute changed), pair
  accuracy per changed attribute, accuracy at P(match) = 0.5, and per-attribute retrieval among
  detailed captions that differ only in that attribute, and how well its video-side attribute
  heads read each attribute;
- structural: mean score of clean held-out renders, of renders with missing frames, and of
  defective renders.

    python benchmarks/reward_quality.py --clips 500 --json docs/results/reward_quality.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import torch

from vpt.rewards.model_files import load_reward_model, resolve_models_dir
from vpt.rewards.networks import TextAlignmentModel
from vpt.rewards.reward_set import RewardBackend, RewardSetConfig, build_reward_set
from vpt.training.reward_data import RewardDataConfig, draw_clip, stack_frames
from vpt.training.reward_quality import (
    attribute_head_accuracy,
    quality_metrics,
    text_alignment_metrics,
)


def structural_figures(rewards: Any, data: RewardDataConfig, count: int) -> dict[str, Any]:
    """Mean structural score of held-out clean, missing-frame and defective renders."""
    reward = next(r for r in rewards.rewards if r.name == "structural")
    variants = {
        "clean": replace(data, defect_fraction=0.0, missing_fraction=0.0),
        "missing_frames": replace(data, defect_fraction=0.0, missing_fraction=1.0),
        "image_and_motion_defects": replace(data, defect_fraction=1.0, missing_fraction=0.0),
    }
    report: dict[str, Any] = {"clips": count}
    for label, variant in variants.items():
        clips = [draw_clip(variant, 101, i, True) for i in range(count)]
        scores = reward.score(stack_frames(clips), [""] * count)
        report[f"mean_score_{label}"] = float(np.mean(scores))
        report[f"fraction_scoring_1_{label}"] = float(np.mean(scores == 1.0))
    return report


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clips", type=int, default=500, help="held-out clips per figure")
    parser.add_argument("--retrieval-clips", type=int, default=100, help="clips for retrieval")
    parser.add_argument("--models", default="packaged", help="reward models folder")
    parser.add_argument("--json", type=Path, default=None, help="where to write the figures")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    started = time.time()
    config = RewardSetConfig(models_dir=args.models, backend=RewardBackend.ONNX)
    rewards = build_reward_set(config)
    by_name = {reward.name: reward for reward in rewards.rewards}
    data = RewardDataConfig()
    results: dict[str, Any] = {
        "models": args.models,
        "backend": "onnx",
        "split": "held-out attribute combinations (vpt.world.splits), never in reward training",
        "data": "60% of clips with 1-2 of blur/noise/jitter/flicker, 25% with 1-6 missing frames",
        "visual_quality": quality_metrics(by_name["visual_quality"], data, args.clips),
        "motion_quality": quality_metrics(by_name["motion_quality"], data, args.clips),
        "text_alignment": text_alignment_metrics(
            by_name["text_alignment"], data, args.clips, args.retrieval_clips
        ),
        "structural": structural_figures(rewards, data, min(args.clips, 200)),
    }
    text_model = load_reward_model(resolve_models_dir(args.models) / "text_alignment").model
    assert isinstance(text_model, TextAlignmentModel)
    results["text_alignment"].update(attribute_head_accuracy(text_model, data, args.clips))
    results["seconds"] = round(time.time() - started, 1)
    text = json.dumps(results, indent=2)
    print(text)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()

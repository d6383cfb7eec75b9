"""Held-out quality of the learned rewards against the shapes world's true labels.

Every figure uses clips of the world's held-out attribute combinations (never in reward
training), rendered with defects and missing frames as in training (`reward_data`), scored
through the `Reward` protocol (so the shipped ONNX graphs are what is measured).

Quality rewards (`quality_metrics`):
- `spearman_severity`: Spearman correlation of the score with minus the true severity (sum of
  the normalised levels the reward regresses); 1 = perfectly ordered;
- `spearman_<level>`: the same on clips that carry only that defect of the dimension (or none);
- `auroc_defective`: P(score of a clean clip > score of a clip with a defect of the dimension);
- `mean_score_clean`, `mean_score_other_dimension`: mean score of clips with no defect, and of
  clips whose only defects belong to the other dimension (ideally equal: no leakage).

Text alignment (`text_alignment_metrics`), on held-out clips with a positive caption and a
hard negative (one stated attribute changed):
- `auroc`: P(score of the matching caption > score of a mismatched one), over all pairs;
- `pair_accuracy`: fraction of clips whose matching caption outscores its own hard negative;
  `pair_accuracy_<attribute>`: the same, by the attribute the negative changes;
- `accuracy_at_half`: fraction of captions on the right side of P(match) = 0.5;
- `retrieval_<attribute>` (with `retrieval_clips`): for detailed captions, how often the caption
  naming the true value scores highest among captions that differ only in that attribute;
- `video_head_accuracy_<attribute>` (`attribute_head_accuracy`, torch model): how often the
  auxiliary attribute heads read the attribute from the video alone.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from typing import Any

import numpy as np
import torch
from scipy import stats

from vpt.rewards.base import Reward
from vpt.rewards.networks import TextAlignmentModel
from vpt.training.reward_data import (
    MOTION_LEVELS,
    VISUAL_LEVELS,
    RewardClip,
    RewardDataConfig,
    draw_caption_pair,
    draw_clip,
    render_reward_clip,
    sample_attributes,
    stack_frames,
)
from vpt.world.captions import detailed_caption
from vpt.world.vocabulary import ATTRIBUTE_TYPES, AttributeName, Attributes

EVAL_STREAM = 101
"""Random stream of held-out evaluation clips (training uses streams < 100)."""
RETRIEVAL_STREAM = 102
"""Random stream of the retrieval clips."""


def auroc(positive: np.ndarray, negative: np.ndarray) -> float:
    """P(a positive scores above a negative), ties counting one half (Mann-Whitney U)."""
    if len(positive) == 0 or len(negative) == 0:
        return float("nan")
    result = stats.mannwhitneyu(positive, negative, alternative="two-sided")
    return float(result.statistic / (len(positive) * len(negative)))


def spearman(scores: np.ndarray, targets: np.ndarray) -> float:
    """Spearman rank correlation (nan when either side is constant)."""
    if len(scores) < 3 or np.ptp(scores) == 0 or np.ptp(targets) == 0:
        return float("nan")
    return float(stats.spearmanr(scores, targets).statistic)


def evaluation_clips(data: RewardDataConfig, count: int) -> list[RewardClip]:
    """`count` held-out clips, with defects and missing frames as in training."""
    return [draw_clip(data, EVAL_STREAM, i, True) for i in range(count)]


def quality_metrics(reward: Reward, data: RewardDataConfig, count: int) -> dict[str, Any]:
    """Held-out figures of a quality reward (`visual_quality` or `motion_quality`)."""
    own = VISUAL_LEVELS if reward.name == "visual_quality" else MOTION_LEVELS
    other = MOTION_LEVELS if reward.name == "visual_quality" else VISUAL_LEVELS
    clips = evaluation_clips(data, count)
    scores = reward.score(stack_frames(clips), ["" for _ in clips]).astype(np.float64)
    scales = np.array(data.level_scales(own))
    levels = np.array([[clip.level(name) for name in own] for clip in clips]) / scales
    other_levels = np.array([[clip.level(name) for name in other] for clip in clips])
    severity = levels.sum(axis=1)
    has_own, has_other = severity > 0, other_levels.sum(axis=1) > 0
    report: dict[str, Any] = {
        "clips": count,
        "spearman_severity": spearman(scores, -severity),
        "auroc_defective": auroc(scores[~has_own], scores[has_own]),
        "mean_score_clean": float(scores[~has_own & ~has_other].mean()),
        "mean_score_other_dimension": float(scores[~has_own & has_other].mean()),
    }
    for k, name in enumerate(own):
        only = np.delete(levels, k, axis=1).sum(axis=1) == 0
        report[f"spearman_{name}"] = spearman(scores[only], -levels[only, k])
        report[f"clips_{name}"] = int((only & (levels[:, k] > 0)).sum())
    return report


def text_alignment_metrics(
    reward: Reward, data: RewardDataConfig, count: int, retrieval_clips: int = 0
) -> dict[str, Any]:
    """Held-out figures of the text-alignment reward."""
    pairs = [draw_caption_pair(data, EVAL_STREAM, i, True) for i in range(count)]
    clips = [
        render_reward_clip(
            p.attributes, np.random.default_rng([data.seed, EVAL_STREAM, i, 1]), data
        )
        for i, p in enumerate(pairs)
    ]
    videos = stack_frames(clips)
    positive = reward.score(videos, [p.positive for p in pairs]).astype(np.float64)
    negative = reward.score(videos, [p.negative for p in pairs]).astype(np.float64)
    report: dict[str, Any] = {
        "clips": count,
        "auroc": auroc(positive, negative),
        "pair_accuracy": float((positive > negative).mean()),
        "accuracy_at_half": float(0.5 * ((positive > 0.5).mean() + (negative < 0.5).mean())),
        "mean_score_matched": float(positive.mean()),
        "mean_score_mismatched": float(negative.mean()),
    }
    by_attribute: dict[str, list[bool]] = defaultdict(list)
    for pair, pos, neg in zip(pairs, positive, negative, strict=True):
        changed = next(
            name
            for name in AttributeName
            if pair.positive_stated.get(name) != pair.negative_stated.get(name)
        )
        by_attribute[changed.value].append(bool(pos > neg))
    for name in AttributeName:
        outcomes = by_attribute.get(name.value, [])
        report[f"pair_accuracy_{name.value}"] = float(np.mean(outcomes)) if outcomes else None
        report[f"pairs_{name.value}"] = len(outcomes)
    if retrieval_clips:
        report.update(_retrieval(reward, data, retrieval_clips))
    return report


def attribute_head_accuracy(
    model: TextAlignmentModel, data: RewardDataConfig, count: int
) -> dict[str, float]:
    """Accuracy of the text-alignment model's video attribute heads on held-out clips: how well
    the video side alone reads each attribute (the heads are not part of the score)."""
    clips = evaluation_clips(data, count)
    with torch.no_grad():
        _, features_BD = model.embed_video(torch.from_numpy(stack_frames(clips)))
        logits = model.attribute_logits(features_BD)
    report = {}
    for name in AttributeName:
        values = list(ATTRIBUTE_TYPES[name])
        truth = np.array([values.index(clip.attributes.get(name)) for clip in clips])
        predicted = logits[name.value].argmax(dim=1).numpy()
        report[f"video_head_accuracy_{name.value}"] = float((predicted == truth).mean())
    return report


def _retrieval(reward: Reward, data: RewardDataConfig, count: int) -> dict[str, Any]:
    """Per attribute: does the true value's caption beat captions naming the other values?"""
    correct: dict[str, list[bool]] = defaultdict(list)
    chance: dict[str, list[float]] = defaultdict(list)
    for i in range(count):
        rng = np.random.default_rng([data.seed, RETRIEVAL_STREAM, i])
        attributes = sample_attributes(rng, held_out=True)
        clip = render_reward_clip(attributes, rng, data)
        for name in AttributeName:
            candidates = _alternatives(attributes, name)
            captions = [
                detailed_caption(a, np.random.default_rng([data.seed, RETRIEVAL_STREAM, i, 9])).text
                for a in candidates
            ]
            videos = np.repeat(clip.frames[None], len(captions), axis=0)
            scores = reward.score(videos, captions)
            correct[name.value].append(candidates[int(np.argmax(scores))] == attributes)
            chance[name.value].append(1.0 / len(candidates))
    report: dict[str, Any] = {"retrieval_clips": count}
    for name in AttributeName:
        report[f"retrieval_{name.value}"] = float(np.mean(correct[name.value]))
        report[f"retrieval_{name.value}_chance"] = float(np.mean(chance[name.value]))
    return report


def _alternatives(attributes: Attributes, name: AttributeName) -> list[Attributes]:
    """`attributes` with attribute `name` set to each value that is valid with the others."""
    options = []
    for value in ATTRIBUTE_TYPES[name]:
        try:
            changes: dict[str, Any] = {name.value: value}
            options.append(dataclasses.replace(attributes, **changes))
        except ValueError:  # e.g. a white object on a white background
            continue
    return options

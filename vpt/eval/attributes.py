"""Prompt following measured by the world's analytic detector.

For each (prompt, seed) the generator makes a video; the detector reads the object's shape,
color, size, direction, speed and the background from pixels alone; each attribute the prompt
states is scored right or wrong. Evaluation prompts come from the held-out attribute
combinations (`vpt.world.splits`), which training data never contains.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from vpt.generator import Generator, SamplerSettings
from vpt.world import Detection, PromptAttributes, detailed_caption, detect_batch, short_caption
from vpt.world.splits import held_out_combinations
from vpt.world.vocabulary import AttributeName

Register = Literal["detailed", "short"]


@dataclass(frozen=True)
class EvalCase:
    """One evaluation prompt, what it asks for, and the seed to sample it with."""

    prompt: str
    expected: PromptAttributes
    seed: int


def wilson_interval(hits: int, total: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a proportion."""
    if total == 0:
        return (math.nan, math.nan)
    p = hits / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return (max(0.0, centre - half), min(1.0, centre + half))


def held_out_cases(count: int, seed: int = 0, register: Register = "detailed") -> list[EvalCase]:
    """`count` prompts over the held-out combinations (cycled), each with its own seed."""
    combinations = held_out_combinations()
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(combinations))
    cases = []
    for i in range(count):
        attributes = combinations[int(order[i % len(combinations)])]
        caption = (
            detailed_caption(attributes, rng)
            if register == "detailed"
            else short_caption(attributes, rng)
        )
        cases.append(EvalCase(caption.text, caption.attributes, seed=seed * 100_000 + i))
    return cases


@dataclass
class AttributeReport:
    """Per-attribute accuracy of a set of videos against what their prompts asked for."""

    correct: dict[str, int]
    asked: dict[str, int]
    all_correct: int
    cases: int
    detections: list[Detection]
    videos: np.ndarray | None = None

    def accuracy(self, name: str) -> float:
        return self.correct[name] / self.asked[name] if self.asked[name] else float("nan")

    def summary(self) -> dict[str, float]:
        result = {name: self.accuracy(name) for name in self.asked if self.asked[name]}
        result["all_correct"] = self.all_correct / max(1, self.cases)
        return result


def score_videos(
    videos: np.ndarray | Sequence[np.ndarray], cases: Sequence[EvalCase]
) -> AttributeReport:
    """Score uint8 videos `(B, F, H, W, 3)` against their cases."""
    if len(videos) != len(cases):
        raise ValueError(f"{len(videos)} videos for {len(cases)} cases")
    detections = detect_batch(list(videos))
    names = [name.value for name in AttributeName]
    correct = dict.fromkeys(names, 0)
    asked = dict.fromkeys(names, 0)
    all_correct = 0
    for case, detection in zip(cases, detections, strict=True):
        every = True
        for name in case.expected.mentioned:
            asked[name.value] += 1
            hit = detection.attributes.get(name) == case.expected.get(name)
            correct[name.value] += int(hit)
            every &= hit
        all_correct += int(every)
    return AttributeReport(correct, asked, all_correct, len(cases), detections)


def evaluate_attributes(
    generator: Generator,
    cases: Sequence[EvalCase],
    sampler: SamplerSettings | None = None,
    batch_size: int = 16,
) -> AttributeReport:
    """Generate one video per case and score it."""
    videos = generator.generate(
        [c.prompt for c in cases], [c.seed for c in cases], sampler, batch_size=batch_size
    )
    report = score_videos(videos, cases)
    report.videos = videos
    return report

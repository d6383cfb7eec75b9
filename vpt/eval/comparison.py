"""Comparing two systems end to end: generate the same (prompt, seed) pairs with both, judge
every video (`vpt.eval.judge`), and summarise as GSB per dimension (`vpt.eval.gsb`).

Every prompt is sampled with every seed, by both systems: pair (p, k) is A's and B's video
for prompt p and seed k, so the two sides differ only by the system.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vpt.eval.gsb import DIMENSIONS, GSBConfig, GSBReport, compare_score_tables
from vpt.eval.judge import JudgeScores, judge_videos
from vpt.eval.systems import System
from vpt.world.preview import save_preview_grid

PAIR_GAP = 2
"""Pixels of gray between A's and B's frame in a pair sheet."""
PAIR_GAP_RGB = (90, 90, 90)
"""Color of that gap."""


@dataclass(frozen=True)
class SystemComparison:
    """Both systems' videos and scores for every (prompt, seed) pair, and the GSB report."""

    report: GSBReport
    """GSB of A against B per dimension."""
    prompts: tuple[str, ...]
    """The prompts, in order."""
    seeds: tuple[int, ...]
    """The seeds every prompt was sampled with."""
    videos_a: np.ndarray
    """A's uint8 videos, (prompts, seeds, F, H, W, 3)."""
    videos_b: np.ndarray
    """B's uint8 videos, (prompts, seeds, F, H, W, 3)."""
    scores_a: tuple[tuple[JudgeScores, ...], ...]
    """The judge's scores of A's videos, [prompt][seed]."""
    scores_b: tuple[tuple[JudgeScores, ...], ...]
    """The judge's scores of B's videos, [prompt][seed]."""


def compare_systems(
    system_a: System,
    system_b: System,
    prompts: Sequence[str],
    seeds: Sequence[int],
    config: GSBConfig | None = None,
) -> SystemComparison:
    """Generate every (prompt, seed) with A and with B, judge the videos and compute GSB."""
    if not prompts:
        raise ValueError("no prompts to compare on; give at least one")
    if not seeds:
        raise ValueError("no seeds to compare on; give at least one")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct, got {list(seeds)}")
    pair_prompts = [prompt for prompt in prompts for _ in seeds]
    pair_seeds = [int(seed) for _ in prompts for seed in seeds]
    tables = []
    for system in (system_a, system_b):
        videos = np.asarray(system.generate(pair_prompts, pair_seeds))
        scores = judge_videos(videos, pair_prompts)
        tables.append((videos, scores))
    (videos_a, judged_a), (videos_b, judged_b) = tables
    shape = (len(prompts), len(seeds))
    report = compare_score_tables(
        _score_tables(judged_a, shape),
        _score_tables(judged_b, shape),
        seeds,
        names=(system_a.name, system_b.name),
        config=config,
    )
    return SystemComparison(
        report=report,
        prompts=tuple(prompts),
        seeds=tuple(int(s) for s in seeds),
        videos_a=videos_a.reshape(*shape, *videos_a.shape[1:]),
        videos_b=videos_b.reshape(*shape, *videos_b.shape[1:]),
        scores_a=_grid(judged_a, shape),
        scores_b=_grid(judged_b, shape),
    )


def save_pair_sheet(comparison: SystemComparison, path: str | Path, pairs: int = 6) -> Path:
    """A PNG of the first `pairs` prompts at their first seed: each row shows A | B side by side
    per frame, captioned with the prompt, the seed and both systems' scores.

    The first prompts, not the most different ones, so the sheet is not cherry-picked. Systems
    of different sizes are cut to the shorter clip and padded to the taller frame.
    """
    if pairs < 1:
        raise ValueError(f"pairs must be >= 1, got {pairs}")
    count = min(pairs, len(comparison.prompts))
    videos_a, videos_b = comparison.videos_a, comparison.videos_b
    frames = min(videos_a.shape[2], videos_b.shape[2])
    height = max(videos_a.shape[3], videos_b.shape[3])
    clips = [
        _side_by_side(_pad(videos_a[p, 0, :frames], height), _pad(videos_b[p, 0, :frames], height))
        for p in range(count)
    ]
    report = comparison.report
    captions = [
        f"{comparison.prompts[p]!r} seed {comparison.seeds[0]} | "
        f"left A {report.system_a}: {_brief(comparison.scores_a[p][0])} | "
        f"right B {report.system_b}: {_brief(comparison.scores_b[p][0])}"
        for p in range(count)
    ]
    return save_preview_grid(clips, path, captions=captions, frames_shown=4)


def _score_tables(scores: Sequence[JudgeScores], shape: tuple[int, int]) -> dict[str, np.ndarray]:
    return {
        dimension: np.array([getattr(s, dimension) for s in scores]).reshape(shape)
        for dimension in DIMENSIONS
    }


def _grid(
    scores: Sequence[JudgeScores], shape: tuple[int, int]
) -> tuple[tuple[JudgeScores, ...], ...]:
    rows, columns = shape
    return tuple(tuple(scores[r * columns : (r + 1) * columns]) for r in range(rows))


def _side_by_side(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """(F, H, W1 + gap + W2, 3): each frame of `left` and `right` with a gray gap between."""
    gap = np.empty((*left.shape[:2], PAIR_GAP, 3), dtype=np.uint8)
    gap[:] = PAIR_GAP_RGB
    return np.concatenate([left, gap, right], axis=2)


def _pad(video: np.ndarray, height: int) -> np.ndarray:
    """`video` padded at the bottom with the gap color to `height` rows."""
    missing = height - video.shape[1]
    if missing <= 0:
        return video
    padding = np.empty((video.shape[0], missing, *video.shape[2:]), dtype=np.uint8)
    padding[:] = PAIR_GAP_RGB
    return np.concatenate([video, padding], axis=1)


def _brief(scores: JudgeScores) -> str:
    return (
        f"vis {scores.visual:.2f} mot {scores.motion:.2f} "
        f"txt {scores.text:.2f} all {scores.overall:.2f}"
    )

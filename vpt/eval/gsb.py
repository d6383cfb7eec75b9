"""Good-Same-Bad (GSB): paired comparison of system A against system B, per dimension.

The seed paper ("A Systematic Post-Train Framework for Video Generation", arXiv 2604.25427)
reports every stage as human GSB against the previous stage on visual quality, motion quality,
text alignment and overall (grpo_and_seed.md 1.8, 4.6). Here a judge's scores stand in for the
raters (pe_and_rewards.md C.2): A and B make videos for the same (prompt, seed) pairs and, per
dimension d and pair i, with Δ_i = score_d(A_i) - score_d(B_i),

    label_i = Good (+1) if Δ_i > τ_d,  Bad (-1) if Δ_i < -τ_d,  Same (0) otherwise
    GSB_d   = (G - B) / (G + S + B)  in [-1, 1]                      (the "net score")

Same margin τ_d (calibrated on seed noise, pe_and_rewards.md C.2): for every prompt and every
two seeds k < k' of one system, |score_d(X, p, k) - score_d(X, p, k')| measures how much a
score moves when only the seed changes. τ_d is the `margin_quantile` (default 75th percentile)
of these differences, pooled over A and B by default (so swapping A and B exactly negates GSB)
or taken from B alone, and never below `min_margin` (the judge's resolution). "Same" then means
"within seed-to-seed noise". With one seed per prompt there are no seed pairs and τ_d =
`min_margin`; the report records how many seed pairs τ_d came from.

Uncertainty (pe_and_rewards.md C.3):
- a paired bootstrap 95% interval of GSB_d: resample prompts with replacement (all seeds of a
  prompt together, since they share the prompt; `resample_unit="pair"` resamples (prompt,
  seed) pairs instead), recompute GSB_d, take the 2.5th and 97.5th percentiles; 2000
  resamples from a fixed seed;
- a two-sided exact sign test: ties dropped, G ~ Binomial(G + B, 1/2)
  (`scipy.stats.binomtest`); p = 1 when there are no Good or Bad pairs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
from scipy import stats

Dimension = Literal["visual", "motion", "text", "overall"]
"""A dimension raters judge on."""
DIMENSIONS: tuple[Dimension, ...] = get_args(Dimension)
"""All dimensions, in report order."""
MarginSource = Literal["pooled", "baseline"]
"""Whose seed-to-seed differences set the Same margin: both systems', or B's only."""
ResampleUnit = Literal["prompt", "pair"]
"""What the bootstrap resamples: whole prompts (all their seeds), or (prompt, seed) pairs."""


@dataclass(frozen=True)
class GSBConfig:
    """How labels, margins and intervals are computed."""

    margin_quantile: float = 0.75
    """Quantile of seed-to-seed |score difference| used as the Same margin."""
    min_margin: float = 0.01
    """Smallest Same margin: score differences below it are never Good or Bad."""
    margin_source: MarginSource = "pooled"
    """Measure seed noise on both systems (pooled) or on system B (baseline) only."""
    resamples: int = 2000
    """Bootstrap resamples."""
    bootstrap_seed: int = 0
    """Seed of the bootstrap's random generator."""
    resample_unit: ResampleUnit = "prompt"
    """Resample whole prompts (cluster bootstrap) or single (prompt, seed) pairs."""
    confidence: float = 0.95
    """Coverage of the bootstrap interval."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.margin_quantile <= 1.0:
            raise ValueError(f"margin_quantile must be in [0, 1], got {self.margin_quantile}")
        if self.min_margin < 0:
            raise ValueError(f"min_margin must be >= 0, got {self.min_margin}")
        if self.margin_source not in get_args(MarginSource):
            raise ValueError(
                f"margin_source {self.margin_source!r} is not one of {get_args(MarginSource)}"
            )
        if self.resample_unit not in get_args(ResampleUnit):
            raise ValueError(
                f"resample_unit {self.resample_unit!r} is not one of {get_args(ResampleUnit)}"
            )
        if self.resamples < 1:
            raise ValueError(f"resamples must be >= 1, got {self.resamples}")
        if not 0.0 < self.confidence < 1.0:
            raise ValueError(f"confidence must be in (0, 1), got {self.confidence}")


@dataclass(frozen=True)
class GSBCounts:
    """How many pairs were Good, Same and Bad for A."""

    good: int
    """Pairs where A beats B by more than the margin."""
    same: int
    """Pairs within the margin."""
    bad: int
    """Pairs where B beats A by more than the margin."""

    @property
    def total(self) -> int:
        """All pairs."""
        return self.good + self.same + self.bad

    @property
    def gsb(self) -> float:
        """(G - B) / (G + S + B); 0 for no pairs."""
        return (self.good - self.bad) / self.total if self.total else 0.0


@dataclass(frozen=True)
class SeedNoise:
    """The Same margin and the seed-to-seed differences it came from."""

    margin: float
    """The Same margin: the quantile of the differences, at least the floor."""
    pairs: int
    """Seed pairs (same system, same prompt, two seeds) measured."""


@dataclass(frozen=True)
class DimensionGSB:
    """GSB of A against B on one dimension."""

    good: int
    """Pairs where A is better by more than `margin`."""
    same: int
    """Pairs within `margin`."""
    bad: int
    """Pairs where A is worse by more than `margin`."""
    gsb: float
    """(G - B) / (G + S + B)."""
    ci_low: float
    """Lower end of the paired bootstrap interval of `gsb`."""
    ci_high: float
    """Upper end of the paired bootstrap interval of `gsb`."""
    p_value: float
    """Two-sided exact sign test of G against B (ties dropped)."""
    margin: float
    """The Same margin used for this dimension."""
    margin_pairs: int
    """Seed pairs the margin was measured on (0: the margin is the floor)."""
    mean_a: float
    """Mean score of A."""
    mean_b: float
    """Mean score of B."""


@dataclass(frozen=True)
class GSBReport:
    """A GSB comparison of two systems on every dimension."""

    system_a: str
    """The system being judged (Good = A better)."""
    system_b: str
    """The baseline."""
    prompts: int
    """Prompts compared."""
    seeds: tuple[int, ...]
    """Seeds each prompt was sampled with, identical for A and B."""
    config: GSBConfig
    """How labels, margins and intervals were computed."""
    dimensions: dict[str, DimensionGSB] = field(default_factory=dict)
    """Per-dimension results, in `DIMENSIONS` order."""
    judge: str = "vpt.eval.judge"
    """What scored the videos."""
    prompt_set: str = ""
    """Name of the prompt set the prompts came from, if any."""

    @property
    def pairs(self) -> int:
        """(prompt, seed) pairs compared."""
        return self.prompts * len(self.seeds)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary of the whole report."""
        data = asdict(self)
        data["seeds"] = list(self.seeds)
        data["pairs"] = self.pairs
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GSBReport:
        """The report `to_dict` wrote."""
        return cls(
            system_a=data["system_a"],
            system_b=data["system_b"],
            prompts=int(data["prompts"]),
            seeds=tuple(int(s) for s in data["seeds"]),
            config=GSBConfig(**data["config"]),
            dimensions={k: DimensionGSB(**v) for k, v in data["dimensions"].items()},
            judge=data.get("judge", "vpt.eval.judge"),
            prompt_set=data.get("prompt_set", ""),
        )

    def write_json(self, path: str | Path) -> Path:
        """Write `to_dict` as indented JSON to `path` and return it."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return target

    def to_markdown(self) -> str:
        """A heading line, how it was computed, and a table with one row per dimension."""
        config = self.config
        source = "both systems" if config.margin_source == "pooled" else "system B"
        unit = "prompts" if config.resample_unit == "prompt" else "(prompt, seed) pairs"
        lines = [
            f"**GSB of A = `{self.system_a}` against B = `{self.system_b}`**: "
            f"{self.prompts} prompts{f' of `{self.prompt_set}`' if self.prompt_set else ''} "
            f"x {len(self.seeds)} seeds = {self.pairs} pairs, judged by `{self.judge}`.",
            "",
            f"Same margin: {100 * config.margin_quantile:g}th percentile of seed-to-seed "
            f"|score difference| on {source} (at least {config.min_margin:g}); "
            f"{100 * config.confidence:g}% CI: paired bootstrap over {unit} "
            f"({config.resamples} resamples, seed {config.bootstrap_seed}); "
            "p: two-sided exact sign test (ties dropped).",
            "",
            f"| dimension | G | S | B | GSB | {100 * config.confidence:g}% CI | p "
            "| margin | mean A | mean B |",
            "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|",
        ]
        for name, result in self.dimensions.items():
            lines.append(
                f"| {name} | {result.good} | {result.same} | {result.bad} "
                f"| {_percent(result.gsb)} "
                f"| [{_percent(result.ci_low)}, {_percent(result.ci_high)}] "
                f"| {result.p_value:.3g} | {result.margin:.3g} "
                f"| {result.mean_a:.3f} | {result.mean_b:.3f} |"
            )
        return "\n".join(lines) + "\n"


def label_pairs(scores_a: np.ndarray, scores_b: np.ndarray, margin: float) -> np.ndarray:
    """+1 (Good), 0 (Same) or -1 (Bad) per pair: A - B above `margin`, within it, or below."""
    a, b = np.asarray(scores_a, dtype=np.float64), np.asarray(scores_b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired scores must have one shape, got {a.shape} and {b.shape}")
    if margin < 0:
        raise ValueError(f"the Same margin must be >= 0, got {margin}")
    difference = a - b
    return (difference > margin).astype(np.int8) - (difference < -margin).astype(np.int8)


def count_labels(labels: np.ndarray) -> GSBCounts:
    """Good, Same and Bad counts of `label_pairs` output."""
    values = np.asarray(labels).ravel()
    if not np.isin(values, (-1, 0, 1)).all():
        raise ValueError("labels must be -1 (Bad), 0 (Same) or +1 (Good)")
    return GSBCounts(
        good=int((values == 1).sum()), same=int((values == 0).sum()), bad=int((values == -1).sum())
    )


def seed_noise_margin(
    tables: Sequence[np.ndarray], quantile: float, floor: float = 0.0
) -> SeedNoise:
    """The `quantile` of |s[p, k] - s[p, k']| over prompts p and seeds k < k' of every
    (prompts, seeds) score table in `tables`, at least `floor`."""
    differences = []
    for table in tables:
        scores = np.asarray(table, dtype=np.float64)
        if scores.ndim != 2:
            raise ValueError(f"a score table is (prompts, seeds), got shape {scores.shape}")
        first, second = np.triu_indices(scores.shape[1], k=1)
        differences.append(np.abs(scores[:, first] - scores[:, second]).ravel())
    pooled = np.concatenate(differences) if differences else np.zeros(0)
    if pooled.size == 0:
        return SeedNoise(margin=floor, pairs=0)
    return SeedNoise(margin=max(floor, float(np.quantile(pooled, quantile))), pairs=pooled.size)


def bootstrap_gsb_interval(
    labels: np.ndarray,
    resamples: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
    unit: ResampleUnit = "prompt",
) -> tuple[float, float]:
    """Percentile bootstrap interval of GSB from (prompts, seeds) labels.

    `unit="prompt"` resamples prompts with replacement, keeping each prompt's seeds together;
    `unit="pair"` resamples single (prompt, seed) pairs.
    """
    table = np.asarray(labels, dtype=np.float64)
    if table.ndim != 2 or table.size == 0:
        raise ValueError(f"labels must be a non-empty (prompts, seeds) table, got {table.shape}")
    clusters = table.sum(axis=1) if unit == "prompt" else table.ravel()
    per_cluster = table.shape[1] if unit == "prompt" else 1
    rng = np.random.default_rng(seed)
    picks = rng.integers(len(clusters), size=(resamples, len(clusters)))
    estimates = clusters[picks].sum(axis=1) / (len(clusters) * per_cluster)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(estimates, [tail, 1.0 - tail])
    return float(low), float(high)


def sign_test_p_value(good: int, bad: int) -> float:
    """Two-sided exact binomial test of `good` wins out of `good + bad` at 1/2 (1 if none)."""
    if good < 0 or bad < 0:
        raise ValueError(f"counts must be >= 0, got good={good}, bad={bad}")
    if good + bad == 0:
        return 1.0
    return float(stats.binomtest(good, good + bad, 0.5, alternative="two-sided").pvalue)


def compare_score_tables(
    scores_a: Mapping[str, np.ndarray],
    scores_b: Mapping[str, np.ndarray],
    seeds: Sequence[int],
    names: tuple[str, str] = ("A", "B"),
    config: GSBConfig | None = None,
) -> GSBReport:
    """GSB of A against B from per-dimension (prompts, seeds) score tables on the same pairs."""
    settings = config or GSBConfig()
    dimensions: dict[str, DimensionGSB] = {}
    prompts = 0
    for dimension in DIMENSIONS:
        if dimension not in scores_a or dimension not in scores_b:
            raise ValueError(f"score tables must include every dimension; missing {dimension!r}")
        a = np.asarray(scores_a[dimension], dtype=np.float64)
        b = np.asarray(scores_b[dimension], dtype=np.float64)
        if a.ndim != 2 or a.shape != b.shape or a.shape[1] != len(seeds) or a.size == 0:
            raise ValueError(
                f"{dimension}: score tables must both be (prompts, {len(seeds)} seeds), "
                f"got {a.shape} and {b.shape}"
            )
        prompts = a.shape[0]
        noise_tables = (a, b) if settings.margin_source == "pooled" else (b,)
        noise = seed_noise_margin(noise_tables, settings.margin_quantile, settings.min_margin)
        labels = label_pairs(a, b, noise.margin)
        counts = count_labels(labels)
        low, high = bootstrap_gsb_interval(
            labels,
            settings.resamples,
            settings.bootstrap_seed,
            settings.confidence,
            settings.resample_unit,
        )
        dimensions[dimension] = DimensionGSB(
            good=counts.good,
            same=counts.same,
            bad=counts.bad,
            gsb=counts.gsb,
            ci_low=low,
            ci_high=high,
            p_value=sign_test_p_value(counts.good, counts.bad),
            margin=noise.margin,
            margin_pairs=noise.pairs,
            mean_a=float(a.mean()),
            mean_b=float(b.mean()),
        )
    return GSBReport(
        system_a=names[0],
        system_b=names[1],
        prompts=prompts,
        seeds=tuple(int(s) for s in seeds),
        config=settings,
        dimensions=dimensions,
    )


def _percent(value: float) -> str:
    return f"{100 * value:+.1f}%"

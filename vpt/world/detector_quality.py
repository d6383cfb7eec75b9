"""How well the analytic detector reads the world: attribute accuracy, defect-level rank
correlation and clean-vs-defective separation, plus render and detection throughput.

`benchmarks/world_detector.py` prints these figures; `tests/world` holds the bars. For clean and for
defective clips, how often the detector reads each attribute correctly, how its defect
measures rank the true defect levels (Spearman, over the clips that carry that defect) and how
well they separate clean from defective clips (AUC), plus clips per second for rendering and
detection on one core. Figures, not assertions: the tests in `tests/world` hold the bars.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
from scipy import stats

from vpt.world.dataset import Clip, sample_clip
from vpt.world.defects import DefectKind
from vpt.world.detector import Detection, detect
from vpt.world.render import WorldConfig, render_clip
from vpt.world.vocabulary import AttributeName, Attributes

MEASURES: dict[DefectKind, str] = {
    DefectKind.BLUR: "blur",
    DefectKind.NOISE: "noise",
    DefectKind.JITTER: "jitter",
    DefectKind.FLICKER: "flicker",
}
"""The `Detection` field that measures each image defect (higher = worse)."""


def attribute_accuracy(clips: Sequence[Clip], detections: Sequence[Detection]) -> dict[str, float]:
    """Fraction of `clips` whose detected attribute equals the true one, per attribute."""
    pairs = list(zip(clips, detections, strict=True))
    return {
        name.value: float(np.mean([d.get(name) == c.attributes.get(name) for c, d in pairs]))
        for name in AttributeName
    }


def defect_spearman(
    clips: Sequence[Clip], detections: Sequence[Detection], kind: DefectKind
) -> float:
    """Spearman correlation of true and measured `kind` over the clips that carry it."""
    true, measured = _levels(clips, detections, kind)
    carrying = true > 0
    if carrying.sum() < 3:
        return float("nan")
    return float(stats.spearmanr(true[carrying], measured[carrying]).statistic)


def defect_auc(clips: Sequence[Clip], detections: Sequence[Detection], kind: DefectKind) -> float:
    """Probability that a clip with `kind` measures worse than a clean clip (ties count half)."""
    true, measured = _levels(clips, detections, kind)
    is_clean = np.array([clip.defects.is_clean for clip in clips])
    clean, defective = measured[is_clean][:, None], measured[true > 0][None, :]
    if clean.size == 0 or defective.size == 0:
        return float("nan")
    return float(np.mean((defective > clean) + 0.5 * (defective == clean)))


def _levels(
    clips: Sequence[Clip], detections: Sequence[Detection], kind: DefectKind
) -> tuple[np.ndarray, np.ndarray]:
    """True and measured levels of `kind` for each clip."""
    pairs = list(zip(clips, detections, strict=True))
    true = np.array([c.defects.level(kind) for c, _ in pairs])
    measured = np.array([float(getattr(d, MEASURES[kind])) for _, d in pairs])
    return true, measured


def measure_render_rate(config: WorldConfig, clips: int) -> float:
    """Clips per second of `render_clip` alone."""
    rng = np.random.default_rng(0)
    attributes = [Attributes.sample(rng) for _ in range(clips)]
    start = time.perf_counter()
    for attribute in attributes:
        render_clip(attribute, rng, config)
    return clips / (time.perf_counter() - start)


def evaluate(config: WorldConfig, clips: int, seed: int = 0) -> dict[str, Any]:
    """All figures for `clips` clean and `clips` defective clips of `config`."""
    clean = [sample_clip(replace(config, defect_fraction=0.0), seed, i) for i in range(clips)]
    defective = [sample_clip(replace(config, defect_fraction=1.0), seed, i) for i in range(clips)]
    start = time.perf_counter()
    clean_detections = [detect(clip.frames, config) for clip in clean]
    detect_rate = clips / (time.perf_counter() - start)
    defective_detections = [detect(clip.frames, config) for clip in defective]
    both = clean + defective
    both_detections = clean_detections + defective_detections
    return {
        "config": {"frames": config.frames, "height": config.height, "width": config.width},
        "clips_each": clips,
        "render_clips_per_second": measure_render_rate(config, clips),
        "detect_clips_per_second": detect_rate,
        "accuracy_clean": attribute_accuracy(clean, clean_detections),
        "accuracy_defective": attribute_accuracy(defective, defective_detections),
        "spearman_within_defect": {
            k.value: defect_spearman(defective, defective_detections, k) for k in MEASURES
        },
        "auc_clean_vs_defect": {k.value: defect_auc(both, both_detections, k) for k in MEASURES},
    }

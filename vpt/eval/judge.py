"""The held-out judge: visual quality, motion quality and text alignment of a video, in [0, 1].

Evaluation only; never a training reward (pe_and_rewards.md C.2: judge with a model not used
as a training reward). It reads each video with the world's analytic detector
(`vpt.world.detect`) and its prompt with the world's parser (`vpt.world.parse_prompt`).

Calibration. Raw detector levels depend on the frame size (a 16-pixel frame reads clean edges
as blur sigma up to ~0.45, a 32-pixel frame up to ~0.15), so each geometry (frames, height,
width) is calibrated once, deterministically, on the world's own renders (`calibrate_judge`):

- `clean` level of a measure m = 95th percentile of m over `CALIBRATION_CLIPS` renders that are
  clean in m's dimension: clean renders plus renders carrying only the strongest defects of the
  other dimension (noise leaks into the jitter and size readings, flicker into blur; this keeps
  a noisy video from losing on motion and a flickering one from losing on visual quality);
- `strong` level = median of m over renders carrying only the world's strongest level of the
  defect it measures (the top of each `DefectConfig` range: blur 1.5, noise 25, jitter 1.5,
  flicker 0.25); for the size measure, which no world defect targets, `strong` is fixed at
  `STRONG_SIZE_VARIATION` (object area varying by half).

and a level maps to the score (1 at or below the clean level, 0.1 at the strong level)::

    level_score(m) = 10 ** (-max(0, m - clean) / (strong - clean))      # 1 when strong <= clean

The three scores (each a product of factors in [0, 1], 0 when no object is found at all):

    visual = level_score(blur) * level_score(noise) * one_object * in_frame
        one_object  = 1 / (1 + |object_count - 1|)   (1 for exactly one object)
        in_frame    = 1 if an object is found in every frame and never touches the edge, else 1/2
    motion = level_score(jitter) * level_score(flicker) * level_score(1 - size_consistency)
             * persistence * color_consistency * moving
        persistence = fraction of frames in which an object is found
        moving      = min(1, motion_speed / (STATIC_FRACTION * slow speed)), 1 for one frame
        (jitter is the residual of the centroid around its straight constant-velocity fit)
    text   = (stated attributes the detector reads back) / (attributes the prompt states)
             (1 when the prompt states none)
    overall = (visual + motion + text) / 3

So a clean render scores ~1 on every dimension, each of the world's strongest defects alone
scores 0.1 on its dimension, and defects compound multiplicatively.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from vpt.eval.reference_renders import IMAGE_DEFECT_KINDS, render_reference, strongest_defects
from vpt.world.defects import DefectConfig, DefectKind
from vpt.world.detector import STATIC_FRACTION, Detection, detect
from vpt.world.parser import parse_prompt
from vpt.world.render import WorldConfig
from vpt.world.vocabulary import Attributes, PromptAttributes, Speed

CALIBRATION_CLIPS = 64
"""Clean renders, and renders per defect, measured to calibrate one geometry."""
CALIBRATION_SEED = 2000
"""Seed of the calibration renders (fixed: the judge is a fixed instrument)."""
CLEAN_QUANTILE = 0.95
"""Quantile of clean-render levels below which a level counts as clean."""
STRONG_SCORE = 0.1
"""Score of a level equal to the world's strongest defect."""
STRONG_SIZE_VARIATION = 0.5
"""1 - size_consistency (area coefficient of variation) that scores `STRONG_SCORE`."""
OUT_OF_FRAME_FACTOR = 0.5
"""Visual factor of an object missing from a frame or touching the frame edge."""
VISUAL_FACTORS = ("blur", "noise", "one_object", "in_frame")
"""The factors whose product is the visual score."""
MOTION_FACTORS = ("jitter", "flicker", "size", "persistence", "color", "moving")
"""The factors whose product is the motion score."""
VISUAL_DEFECTS = (DefectKind.BLUR, DefectKind.NOISE)
"""World defects that damage single frames (measured by the visual score)."""
MOTION_DEFECTS = (DefectKind.JITTER, DefectKind.FLICKER)
"""World defects that damage the frames' sequence (measured by the motion score)."""


@dataclass(frozen=True)
class LevelCalibration:
    """Where one detector measure (higher = worse) sits on clean and strongly damaged renders."""

    clean: float
    """Level at or below which a video counts as clean (score 1)."""
    strong: float
    """Level of the world's strongest defect (score `STRONG_SCORE`)."""

    def score(self, level: float) -> float:
        """1 at or below `clean`, `STRONG_SCORE` at `strong`, decaying exponentially beyond."""
        span = self.strong - self.clean
        if span <= 1e-9:
            return 1.0
        excess = max(0.0, float(level) - self.clean)
        return float(STRONG_SCORE ** (excess / span))


@dataclass(frozen=True)
class JudgeCalibration:
    """The judge's reference levels for one video geometry."""

    frames: int
    """Frames per video."""
    height: int
    """Frame height, pixels."""
    width: int
    """Frame width, pixels."""
    blur: LevelCalibration
    """Detector blur sigma, reference pixels."""
    noise: LevelCalibration
    """Detector noise std, 0..255."""
    jitter: LevelCalibration
    """Detector centroid jitter, reference pixels."""
    flicker: LevelCalibration
    """Detector brightness flicker."""
    size_variation: LevelCalibration
    """1 - detector size_consistency."""
    moving_speed: float
    """Speed (reference pixels per frame) at and above which an object counts as moving."""

    @property
    def geometry(self) -> tuple[int, int, int]:
        """(frames, height, width)."""
        return (self.frames, self.height, self.width)


@dataclass(frozen=True)
class JudgeScores:
    """The judge's verdict on one video; every score is in [0, 1], higher is better."""

    visual: float
    """Visual quality: sharpness, noise, exactly one object, object in frame."""
    motion: float
    """Motion quality: jitter, flicker, persistence, color and size consistency, moving."""
    text: float
    """Text alignment: fraction of the stated attributes read back from the pixels."""
    overall: float
    """Mean of visual, motion and text."""
    factors: dict[str, float] = field(default_factory=dict, compare=False, repr=False)
    """Each factor behind the three scores, by name (see the module docstring)."""


def calibrate_judge(
    frames: int, height: int, width: int, clips: int = CALIBRATION_CLIPS
) -> JudgeCalibration:
    """Calibrate the judge for videos of this geometry on the world's clean and damaged renders.

    Deterministic; cached per (frames, height, width, clips) for the life of the process.
    """
    if clips < 2:
        raise ValueError(f"calibration needs at least 2 clips, got {clips}")
    return _calibrate(int(frames), int(height), int(width), int(clips))


@functools.cache
def _calibrate(frames: int, height: int, width: int, clips: int) -> JudgeCalibration:
    config = WorldConfig(frames=frames, height=height, width=width, defect_fraction=0.0)
    rng = np.random.default_rng(CALIBRATION_SEED)
    prompts = [Attributes.sample(rng).to_prompt() for _ in range(clips)]
    seeds = [CALIBRATION_SEED + index for index in range(clips)]

    def measure(kind: DefectKind | None) -> list[Detection]:
        defects = strongest_defects(DefectConfig(), (kind,)) if kind else None
        return [
            detect(render_reference(prompt, seed, config, defects), config)
            for prompt, seed in zip(prompts, seeds, strict=True)
        ]

    measured = {kind: measure(kind) for kind in (None, *IMAGE_DEFECT_KINDS)}

    def levels(kinds: tuple[DefectKind | None, ...], name: str) -> np.ndarray:
        values = [getattr(d, name) for kind in kinds for d in measured[kind]]
        return np.array(values, dtype=np.float64)

    def calibrated(kind: DefectKind) -> LevelCalibration:
        return LevelCalibration(
            clean=float(np.quantile(levels(_clean_for(kind), kind.value), CLEAN_QUANTILE)),
            strong=float(np.median(levels((kind,), kind.value))),
        )

    size_variation = 1.0 - levels(_clean_for(DefectKind.JITTER), "size_consistency")
    slow = config.speed_px_per_frame(Speed.SLOW) / config.scale
    return JudgeCalibration(
        frames=frames,
        height=height,
        width=width,
        blur=calibrated(DefectKind.BLUR),
        noise=calibrated(DefectKind.NOISE),
        jitter=calibrated(DefectKind.JITTER),
        flicker=calibrated(DefectKind.FLICKER),
        size_variation=LevelCalibration(
            clean=float(np.quantile(size_variation, CLEAN_QUANTILE)),
            strong=STRONG_SIZE_VARIATION,
        ),
        moving_speed=STATIC_FRACTION * slow,
    )


def _clean_for(kind: DefectKind) -> tuple[DefectKind | None, ...]:
    """Renders that are clean in the dimension `kind` belongs to: clean ones, and those
    damaged only in the other dimension (noise leaks into the jitter reading, flicker into blur).
    """
    others = MOTION_DEFECTS if kind in VISUAL_DEFECTS else VISUAL_DEFECTS
    return (None, *others)


def judge_videos(
    videos: np.ndarray | Sequence[np.ndarray],
    prompts: Sequence[str],
    calibration: JudgeCalibration | None = None,
) -> list[JudgeScores]:
    """Score uint8 videos (each (F, H, W, 3)) against the prompts they were made from.

    Each geometry is calibrated with `calibrate_judge` unless `calibration` is given, in which
    case every video must have its geometry.
    """
    if len(videos) != len(prompts):
        raise ValueError(f"got {len(videos)} videos for {len(prompts)} prompts; give one each")
    scores = []
    for index, (video, prompt) in enumerate(zip(videos, prompts, strict=True)):
        frames = np.asarray(video)
        if frames.ndim != 4 or frames.shape[3] != 3 or frames.dtype != np.uint8:
            raise ValueError(
                f"video {index} must be uint8 shaped (F, H, W, 3), got {frames.dtype} "
                f"{frames.shape}"
            )
        geometry = (frames.shape[0], frames.shape[1], frames.shape[2])
        reference = calibration or calibrate_judge(*geometry)
        if reference.geometry != geometry:
            raise ValueError(
                f"video {index} is {geometry} (frames, height, width) but the calibration is for "
                f"{reference.geometry}; calibrate with calibrate_judge(*{geometry})"
            )
        detection = detect(frames)  # the detector takes the geometry from the clip
        scores.append(score_detection(detection, parse_prompt(prompt).attributes, reference))
    return scores


def score_detection(
    detection: Detection, stated: PromptAttributes, calibration: JudgeCalibration
) -> JudgeScores:
    """The judge's scores for one detection against what its prompt states."""
    has_object = detection.object_rgb is not None
    present = np.isfinite(detection.centroids[:, 0])
    factors = {
        "blur": calibration.blur.score(detection.blur),
        "noise": calibration.noise.score(detection.noise),
        "one_object": 1.0 / (1.0 + abs(detection.object_count - 1)),
        "in_frame": 1.0 if detection.is_in_frame else OUT_OF_FRAME_FACTOR,
        "jitter": calibration.jitter.score(detection.jitter),
        "flicker": calibration.flicker.score(detection.flicker),
        "size": calibration.size_variation.score(1.0 - detection.size_consistency),
        "persistence": float(present.mean()),
        "color": detection.color_consistency,
        "moving": _moving_factor(detection, calibration),
        "text": _alignment(detection, stated) if has_object else 0.0,
    }
    visual = motion = 0.0
    if has_object:
        visual = float(np.prod([factors[name] for name in VISUAL_FACTORS]))
        motion = float(np.prod([factors[name] for name in MOTION_FACTORS]))
    text = factors["text"]
    return JudgeScores(
        visual=visual,
        motion=motion,
        text=text,
        overall=(visual + motion + text) / 3.0,
        factors=factors,
    )


def _moving_factor(detection: Detection, calibration: JudgeCalibration) -> float:
    """1 for an object moving at least the detector's 'moving' speed, less for a slower one."""
    if calibration.frames < 2 or calibration.moving_speed <= 0:
        return 1.0
    return float(min(1.0, detection.motion_speed / calibration.moving_speed))


def _alignment(detection: Detection, stated: PromptAttributes) -> float:
    """Fraction of the attributes `stated` that `detection` reads back (1 if none stated)."""
    if not stated.mentioned:
        return 1.0
    hits = sum(detection.get(name) == stated.get(name) for name in stated.mentioned)
    return hits / len(stated.mentioned)

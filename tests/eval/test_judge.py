"""The held-out judge: clean renders score ~1, each strongest world defect drags its own
dimension to ~0.1, text alignment counts the stated attributes read back."""

from __future__ import annotations

import numpy as np
import pytest

from vpt.eval.judge import STRONG_SCORE, JudgeScores, calibrate_judge, judge_videos
from vpt.eval.reference_renders import render_reference, strongest_defects
from vpt.world import DefectKind, Defects, PromptAttributes, WorldConfig, parse_prompt

CONFIG = WorldConfig()
PROMPTS = [
    "red circle moving left",
    "a small blue square on black",
    "fast triangle going up",
    "big yellow ball drifting down slowly over navy",
    "green box",
    "tiny white triangle on a gray background",
]
SEEDS = [3, 4]


def judged(prompts: list[str], defects: Defects | None = None) -> list[JudgeScores]:
    pairs = [(p, s) for p in prompts for s in SEEDS]
    videos = [render_reference(parse_prompt(p).attributes, s, CONFIG, defects) for p, s in pairs]
    return judge_videos(videos, [p for p, _ in pairs])


def mean(scores: list[JudgeScores], dimension: str) -> float:
    return float(np.mean([getattr(s, dimension) for s in scores]))


def test_clean_renders_score_about_one_on_every_dimension() -> None:
    scores = judged(PROMPTS)
    for dimension in ("visual", "motion", "text", "overall"):
        assert mean(scores, dimension) >= 0.97, (dimension, scores)


def test_clean_beats_defective_on_visual_and_motion_for_every_video() -> None:
    clean = judged(PROMPTS)
    defective = judged(PROMPTS, strongest_defects())
    for good, bad in zip(clean, defective, strict=True):
        assert good.visual > bad.visual + 0.5
        assert good.motion > bad.motion + 0.5
    assert mean(defective, "visual") < 0.05 and mean(defective, "motion") < 0.05


@pytest.mark.parametrize(
    ("kind", "hit", "spared"),
    [
        (DefectKind.BLUR, "visual", "motion"),
        (DefectKind.NOISE, "visual", "motion"),
        (DefectKind.JITTER, "motion", "visual"),
        (DefectKind.FLICKER, "motion", "visual"),
    ],
)
def test_each_strongest_defect_scores_about_a_tenth_on_its_own_dimension(
    kind: DefectKind, hit: str, spared: str
) -> None:
    scores = judged(PROMPTS, strongest_defects(kinds=(kind,)))
    assert mean(scores, hit) == pytest.approx(STRONG_SCORE, abs=0.05)
    assert mean(scores, spared) >= 0.85
    assert mean(scores, "text") == 1.0


def test_visual_score_falls_as_blur_grows() -> None:
    visual = [
        mean(judged(PROMPTS[:3], Defects(blur=sigma)), "visual") for sigma in (0.0, 0.6, 1.0, 1.5)
    ]
    assert visual == sorted(visual, reverse=True) and visual[0] > visual[1] > visual[3]


def test_text_alignment_counts_the_stated_attributes_read_back() -> None:
    video = render_reference(parse_prompt("red circle moving left").attributes, 0, CONFIG)
    prompts = [
        "red circle moving left",
        "blue circle moving left",  # color wrong: 2 of 3
        "blue square",  # both wrong: 0 of 2
        "red square moving right",  # 1 of 3
    ]
    scores = judge_videos([video] * len(prompts), prompts)
    assert [s.text for s in scores] == pytest.approx([1.0, 2 / 3, 0.0, 1 / 3])
    assert len({(s.visual, s.motion) for s in scores}) == 1  # the prompt only moves text


def test_an_empty_video_scores_zero() -> None:
    empty = np.full((CONFIG.frames, CONFIG.height, CONFIG.width, 3), 12, dtype=np.uint8)
    (scores,) = judge_videos([empty], ["red circle on black"])
    assert (scores.visual, scores.motion, scores.text, scores.overall) == (0.0, 0.0, 0.0, 0.0)


def test_a_static_object_loses_on_motion_but_not_on_visual_quality() -> None:
    moving = render_reference(PromptAttributes.from_values({}), 5, CONFIG)
    static = np.repeat(moving[:1], CONFIG.frames, axis=0)
    still, moved = judge_videos([static, moving], ["circle", "circle"])
    assert moved.motion > 0.95 and still.motion < 0.05
    assert still.visual == pytest.approx(moved.visual, abs=0.05)


def test_calibration_is_per_geometry_and_deterministic() -> None:
    small = calibrate_judge(4, 16, 16)
    assert small == calibrate_judge(4, 16, 16)
    # a 16-pixel frame reads clean edges as softer than a 32-pixel one
    assert small.blur.clean > calibrate_judge(16, 32, 32).blur.clean
    video = render_reference(parse_prompt("red circle").attributes, 0, CONFIG)
    with pytest.raises(ValueError, match="calibration is for"):
        judge_videos([video], ["red circle"], calibration=small)


def test_bad_input_is_refused_with_a_clear_message() -> None:
    video = render_reference(parse_prompt("red circle").attributes, 0, CONFIG)
    with pytest.raises(ValueError, match="1 videos for 2 prompts"):
        judge_videos([video], ["a", "b"])
    with pytest.raises(ValueError, match="must be uint8"):
        judge_videos([video.astype(np.float32)], ["red circle"])

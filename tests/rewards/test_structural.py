"""Known answers of the structural reward: 1 on clean renders, low when a constraint breaks."""

from __future__ import annotations

import numpy as np
import pytest

from vpt.rewards import RewardInputError
from vpt.rewards.structural import ONE_OBJECT_FACTOR, StructuralReward
from vpt.world import ShapesWorld, WorldConfig
from vpt.world.render import composite, draw_coverage
from vpt.world.vocabulary import BACKGROUND_RGB, OBJECT_RGB, Background, Color, Shape

FRAMES = 16


def _path(start: tuple[float, float], end: tuple[float, float]) -> np.ndarray:
    return np.stack(
        [np.linspace(start[0], end[0], FRAMES), np.linspace(start[1], end[1], FRAMES)], axis=1
    )


def _video(mask: np.ndarray, color: Color = Color.RED) -> np.ndarray:
    return composite(mask, OBJECT_RGB[color], BACKGROUND_RGB[Background.BLACK])


def _score(*videos: np.ndarray) -> np.ndarray:
    return StructuralReward().score(np.stack(videos), ["a red circle"] * len(videos))


def test_clean_world_renders_score_exactly_one() -> None:
    clips = ShapesWorld(WorldConfig(), seed=4, clean_only=True).batch(range(24))
    scores = StructuralReward().score(clips.frames, list(clips.captions))
    assert scores.dtype == np.float32 and scores.shape == (24,)
    np.testing.assert_array_equal(scores, np.ones(24, dtype=np.float32))


def test_clean_renders_at_another_size_score_one() -> None:
    clips = ShapesWorld(WorldConfig(frames=8, height=48, width=64), seed=1, clean_only=True)
    batch = clips.batch(range(4))
    np.testing.assert_array_equal(StructuralReward().score(batch.frames, ["x"] * 4), np.ones(4))


def test_two_objects_score_low() -> None:
    first = draw_coverage(Shape.CIRCLE, 4.0, _path((8, 9), (24, 9)), 32, 32)
    second = draw_coverage(Shape.SQUARE, 4.0, _path((24, 23), (8, 23)), 32, 32)
    (score,) = _score(_video(np.maximum(first, second)))
    assert score == pytest.approx(ONE_OBJECT_FACTOR, abs=0.02)


def test_object_leaving_the_frame_scores_low() -> None:
    mask = draw_coverage(Shape.CIRCLE, 5.0, _path((16, 16), (44, 16)), 32, 32)
    (score,) = _score(_video(mask))
    assert score < 0.2


def test_color_change_and_growth_score_low() -> None:
    mask = draw_coverage(Shape.CIRCLE, 5.0, _path((8, 16), (24, 16)), 32, 32)
    recolored = _video(mask, Color.GREEN)
    recolored[FRAMES // 2 :] = _video(mask, Color.RED)[FRAMES // 2 :]
    centre = np.full((1, 2), 16.0)
    growing = np.stack(
        [draw_coverage(Shape.CIRCLE, r, centre, 32, 32)[0] for r in np.linspace(3, 8, FRAMES)]
    )
    scores = _score(recolored, _video(growing, Color.BLUE))
    assert scores.max() < 0.2


def test_empty_video_scores_zero() -> None:
    blank = np.zeros((FRAMES, 32, 32, 3), dtype=np.uint8)
    np.testing.assert_array_equal(_score(blank), [0.0])


@pytest.mark.parametrize(
    ("videos", "prompts", "message"),
    [
        (np.zeros((1, 4, 32, 32, 3), dtype=np.float32), ["a"], "uint8"),
        (np.zeros((1, 32, 32, 3), dtype=np.uint8), ["a"], "shape"),
        (np.zeros((2, 4, 32, 32, 3), dtype=np.uint8), ["a"], "2 videos but 1 prompts"),
        (np.zeros((1, 4, 8, 8, 3), dtype=np.uint8), ["a"], "at least 1 frame of 16x16"),
        (np.zeros((1, 4, 32, 32, 3), dtype=np.uint8), "a", "one string"),
    ],
)
def test_bad_input_gets_a_clear_error(videos: np.ndarray, prompts: object, message: str) -> None:
    with pytest.raises(RewardInputError, match=message):
        StructuralReward().score(videos, prompts)  # type: ignore[arg-type]

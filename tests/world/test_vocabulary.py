"""The vocabulary: valid combinations, palettes with good contrast, prompt attributes."""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pytest

from vpt.world import (
    BACKGROUND_RGB,
    OBJECT_RGB,
    AttributeName,
    Attributes,
    Background,
    Color,
    Direction,
    PromptAttributes,
    Shape,
    Size,
    Speed,
    all_attribute_combinations,
)


def distance(first: tuple[int, int, int], second: tuple[int, int, int]) -> float:
    return float(np.linalg.norm(np.subtract(first, second)))


def test_every_allowed_object_background_pair_has_strong_contrast() -> None:
    for color, background in itertools.product(Color, Background):
        if color.value == background.value:
            continue
        assert distance(OBJECT_RGB[color], BACKGROUND_RGB[background]) > 120, (color, background)


def test_object_colors_are_far_apart() -> None:
    for first, second in itertools.combinations(Color, 2):
        assert distance(OBJECT_RGB[first], OBJECT_RGB[second]) > 120, (first, second)


def test_all_combinations_are_valid_unique_and_complete() -> None:
    combinations = list(all_attribute_combinations())
    assert len(combinations) == 3 * (7 * 4 - 1) * 2 * 4 * 2
    assert len(set(combinations)) == len(combinations)
    assert all(a.color.value != a.background.value for a in combinations)


def test_a_white_object_on_white_is_rejected_with_a_clear_message() -> None:
    with pytest.raises(ValueError, match="background must differ"):
        Attributes(
            Shape.CIRCLE, Color.WHITE, Size.SMALL, Direction.UP, Speed.FAST, Background.WHITE
        )


def test_attribute_strings_are_coerced_and_bad_values_name_the_choices() -> None:
    attributes = Attributes("circle", "red", "small", "left", "slow", "black")  # type: ignore[arg-type]
    assert attributes.shape is Shape.CIRCLE and attributes.background is Background.BLACK
    with pytest.raises(ValueError, match="shape='hexagon' is not one of: circle, square"):
        Attributes("hexagon", "red", "small", "left", "slow", "black")  # type: ignore[arg-type]


def test_sample_is_uniform_over_valid_combinations() -> None:
    rng = np.random.default_rng(0)
    draws = [Attributes.sample(rng) for _ in range(6000)]
    assert all(a.color.value != a.background.value for a in draws)
    pairs = Counter((a.color, a.background) for a in draws)
    assert len(pairs) == 27
    expected = len(draws) / 27
    assert max(abs(count - expected) for count in pairs.values()) < 5 * np.sqrt(expected)
    shapes = Counter(a.shape for a in draws)
    assert max(abs(count - 2000) for count in shapes.values()) < 5 * np.sqrt(2000)


def test_prompt_attributes_report_what_they_mention_and_agree_with_truth() -> None:
    truth = Attributes(
        Shape.SQUARE, Color.BLUE, Size.LARGE, Direction.DOWN, Speed.FAST, Background.GRAY
    )
    prompt = PromptAttributes(shape=Shape.SQUARE, color=Color.BLUE)
    assert prompt.mentioned == (AttributeName.SHAPE, AttributeName.COLOR)
    assert prompt.agrees_with(truth)
    assert not PromptAttributes(color=Color.RED).agrees_with(truth)
    assert truth.to_prompt().to_attributes() == truth
    with pytest.raises(ValueError, match="leaves size, direction, speed, background open"):
        prompt.to_attributes()

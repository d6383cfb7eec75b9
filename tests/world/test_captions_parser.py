"""Captions in two registers and the prompt parser that reads them back."""

from __future__ import annotations

import numpy as np
import pytest

from vpt.world import (
    AttributeName,
    Attributes,
    Background,
    CaptionRegister,
    Color,
    Direction,
    Shape,
    Size,
    Speed,
    detailed_caption,
    parse_prompt,
    short_caption,
)
from vpt.world.lexicon import QUALITY_PHRASES


def test_parsing_thousands_of_captions_recovers_exactly_what_they_mention() -> None:
    rng = np.random.default_rng(0)
    for index in range(4000):
        truth = Attributes.sample(rng)
        caption = short_caption(truth, rng) if index % 2 else detailed_caption(truth, rng)
        parsed = parse_prompt(caption.text)
        assert parsed.attributes == caption.attributes, caption.text
        assert parsed.unknown_words == () and parsed.conflicts == (), caption.text
        assert caption.attributes.agrees_with(truth)


def test_detailed_captions_state_everything_with_quality_words() -> None:
    rng = np.random.default_rng(1)
    quality_words = {w for phrase in QUALITY_PHRASES for w in phrase.replace(",", "").split()}
    for _ in range(200):
        caption = detailed_caption(Attributes.sample(rng), rng)
        assert caption.register is CaptionRegister.DETAILED
        assert caption.attributes.is_complete
        assert quality_words & set(caption.text.replace(",", " ").replace(":", " ").split())


def test_short_captions_state_two_to_four_attributes_always_the_shape() -> None:
    rng = np.random.default_rng(2)
    captions = [short_caption(Attributes.sample(rng), rng) for _ in range(1000)]
    counts = [len(c.attributes.mentioned) for c in captions]
    assert set(counts) == {2, 3, 4}
    assert all(c.attributes.shape is not None for c in captions)
    with_color = np.mean([c.attributes.color is not None for c in captions])
    assert 0.75 < with_color < 0.95
    assert len({c.text for c in captions}) > 600


@pytest.mark.parametrize(
    "text",
    [
        "red circle moving left",
        "Moving LEFT: a RED circle!",
        "left, circle, red",
        "the red circle is moving to the left",
        "a red circle going leftwards",
    ],
)
def test_word_order_case_punctuation_and_filler_do_not_matter(text: str) -> None:
    parsed = parse_prompt(text)
    assert parsed.attributes.shape is Shape.CIRCLE
    assert parsed.attributes.color is Color.RED
    assert parsed.attributes.direction is Direction.LEFT
    assert parsed.attributes.mentioned == (
        AttributeName.SHAPE,
        AttributeName.COLOR,
        AttributeName.DIRECTION,
    )
    assert parsed.is_clean


def test_synonyms_are_understood() -> None:
    parsed = parse_prompt("big grey-backdrop ball heading upward quickly")
    assert parsed.attributes.size is Size.LARGE
    assert parsed.attributes.background is Background.GRAY
    assert parsed.attributes.shape is Shape.CIRCLE
    assert parsed.attributes.direction is Direction.UP
    assert parsed.attributes.speed is Speed.FAST
    assert parse_prompt("tiny aqua boxes drifting slowly").attributes.size is Size.SMALL


@pytest.mark.parametrize(
    ("text", "color", "background"),
    [
        ("a white circle on a black background", Color.WHITE, Background.BLACK),
        ("black background with a white circle", Color.WHITE, Background.BLACK),
        ("white square over navy", Color.WHITE, Background.NAVY),
        ("a blue triangle against a navy blue backdrop", Color.BLUE, Background.NAVY),
        ("cyan circle, white background", Color.CYAN, Background.WHITE),
        ("on white, a yellow box", Color.YELLOW, Background.WHITE),
    ],
)
def test_background_color_is_told_apart_from_object_color(
    text: str, color: Color, background: Background
) -> None:
    parsed = parse_prompt(text)
    assert parsed.attributes.color is color
    assert parsed.attributes.background is background
    assert parsed.is_clean


def test_missing_attributes_stay_open() -> None:
    parsed = parse_prompt("a triangle")
    assert parsed.attributes.mentioned == (AttributeName.SHAPE,)
    assert parse_prompt("").attributes.mentioned == ()


def test_unknown_words_are_reported_not_guessed() -> None:
    parsed = parse_prompt("a purple hexagon spinning left")
    assert parsed.unknown_words == ("purple", "hexagon", "spinning")
    assert parsed.attributes.color is None and parsed.attributes.shape is None
    assert parsed.attributes.direction is Direction.LEFT


@pytest.mark.parametrize(
    ("text", "conflict", "open_attribute"),
    [
        ("a red circle and a blue square", "shape: circle vs square", AttributeName.SHAPE),
        ("red green triangle", "color: red vs green", AttributeName.COLOR),
        ("fast slowly circle", "speed: fast vs slow", AttributeName.SPEED),
        ("circle on a red background", "red is not a background color", AttributeName.BACKGROUND),
        ("a black square", "black is not an object color", AttributeName.COLOR),
        ("white circle on white", "white object cannot be on a white", AttributeName.COLOR),
    ],
)
def test_conflicts_are_reported_and_leave_the_attribute_open(
    text: str, conflict: str, open_attribute: AttributeName
) -> None:
    parsed = parse_prompt(text)
    assert any(conflict in found for found in parsed.conflicts), parsed.conflicts
    assert parsed.attributes.get(open_attribute) is None

"""Captions in two registers, as in real video data.

- Short, user-style: 2-4 attributes, always the shape and usually the color, in varied order
  ("red circle moving left", "going up fast: a small blue square").
- Detailed: all six attributes and quality words ("a large red circle moving left slowly over a
  black background, sharp edges, smooth motion").

Each function returns a `Caption` with the text and exactly the attributes the text states.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from vpt.world.lexicon import (
    BACKGROUND_COLOR_WORDS,
    DIRECTION_PHRASES,
    MOTION_VERBS,
    OBJECT_COLOR_WORDS,
    QUALITY_PHRASES,
    SHAPE_WORDS,
    SIZE_WORDS,
    SPEED_ADJECTIVES,
    SPEED_ADVERBS,
)
from vpt.world.vocabulary import AttributeName, Attributes, PromptAttributes, choose

SHORT_COLOR_PROBABILITY = 0.85
"""How often a short caption names the object color."""
SHORT_ARTICLE_PROBABILITY = 0.4
"""How often a short caption starts its noun phrase with an article."""
SPEED_ADJECTIVE_PROBABILITY = 0.3
"""How often speed is said as an adjective ("a fast red circle") rather than an adverb."""

DETAILED_TEMPLATES: tuple[str, ...] = (
    "{a_size} {color} {shape} {verb} {direction} {speed} over a {background} background, {quality}",
    "{quality}: {a_size} {color} {shape} {verb} {speed} {direction} against a {background} "
    "background",
    "a {background} background with {a_size} {color} {shape} {verb} {direction} {speed}, {quality}",
    "video of a {speed_adjective} {size} {color} {shape} {verb} {direction} on a plain "
    "{background} backdrop, {quality}",
    "{size} {color} {shape} on {background}, {verb} {direction} {speed}, {quality}",
)
"""Detailed-register templates; every one states all six attributes."""

BACKGROUND_FORMS: tuple[str, ...] = (
    "on {background}",
    "on a {background} background",
    "{background} background",
    "over {background}",
    "against a {background} backdrop",
)
"""Ways a short caption states the background color."""


class CaptionRegister(StrEnum):
    """The style of a caption."""

    SHORT = "short"
    DETAILED = "detailed"


@dataclass(frozen=True)
class Caption:
    """A caption and what it states."""

    text: str
    """The caption."""
    attributes: PromptAttributes
    """Exactly the attributes the text states."""
    register: CaptionRegister
    """Short (user-style) or detailed."""

    def __str__(self) -> str:
        return self.text


def sample_short_mentions(rng: np.random.Generator) -> tuple[AttributeName, ...]:
    """Which 2-4 attributes a short caption states: always the shape, usually the color."""
    mentions = [AttributeName.SHAPE]
    if rng.random() < SHORT_COLOR_PROBABILITY:
        mentions.append(AttributeName.COLOR)
    total = int(rng.integers(2, 5))
    others = [
        AttributeName.SIZE,
        AttributeName.DIRECTION,
        AttributeName.SPEED,
        AttributeName.BACKGROUND,
    ]
    extra = rng.choice(len(others), size=total - len(mentions), replace=False)
    mentions.extend(others[int(i)] for i in extra)
    return tuple(n for n in AttributeName if n in mentions)


def short_caption(
    attributes: Attributes,
    rng: np.random.Generator,
    mentions: Sequence[AttributeName] | None = None,
) -> Caption:
    """A short user-style caption stating `mentions` (drawn when None) of `attributes`."""
    names = tuple(mentions) if mentions is not None else sample_short_mentions(rng)
    if AttributeName.SHAPE not in names:
        raise ValueError(f"a short caption always names the shape; got mentions {names}")
    stated = attributes.to_prompt(names)
    has_speed_adjective = stated.speed is not None and rng.random() < SPEED_ADJECTIVE_PROBABILITY
    noun_phrase = _short_noun_phrase(stated, rng, has_speed_adjective)
    motion = _short_motion(stated, rng, has_speed_adjective)
    background = ""
    if stated.background is not None:
        form = choose(rng, BACKGROUND_FORMS)
        background = form.format(background=choose(rng, BACKGROUND_COLOR_WORDS[stated.background]))
    arrangements: tuple[Callable[[], Sequence[str]], ...] = (
        lambda: (noun_phrase, motion, background),
        lambda: (_join(noun_phrase, motion), ", ", background),
        lambda: (background, ", " if background else "", noun_phrase, motion),
        lambda: (motion, ": " if motion else "", noun_phrase, background),
    )
    pieces = choose(rng, arrangements)()
    return Caption(_tidy(pieces), stated, CaptionRegister.SHORT)


def detailed_caption(attributes: Attributes, rng: np.random.Generator) -> Caption:
    """A detailed caption stating all six attributes and ending with quality words."""
    speed_adjective = choose(rng, SPEED_ADJECTIVES[attributes.speed])
    size = choose(rng, SIZE_WORDS[attributes.size])
    text = choose(rng, DETAILED_TEMPLATES).format(
        a_size=f"{_article(size)} {size}",
        size=size,
        color=choose(rng, OBJECT_COLOR_WORDS[attributes.color]),
        shape=choose(rng, SHAPE_WORDS[attributes.shape]),
        verb=choose(rng, MOTION_VERBS),
        direction=choose(rng, DIRECTION_PHRASES[attributes.direction]),
        speed=choose(rng, SPEED_ADVERBS[attributes.speed]),
        speed_adjective=speed_adjective,
        background=choose(rng, BACKGROUND_COLOR_WORDS[attributes.background]),
        quality=choose(rng, QUALITY_PHRASES),
    )
    return Caption(text, attributes.to_prompt(), CaptionRegister.DETAILED)


def caption_in_register(
    attributes: Attributes,
    register: CaptionRegister,
    rng: np.random.Generator,
    mentions: Sequence[AttributeName] | None = None,
) -> Caption:
    """A caption of `attributes` in `register` (`mentions` only applies to short captions)."""
    if register is CaptionRegister.DETAILED:
        return detailed_caption(attributes, rng)
    return short_caption(attributes, rng, mentions)


def _short_noun_phrase(
    stated: PromptAttributes, rng: np.random.Generator, has_speed_adjective: bool
) -> str:
    assert stated.shape is not None
    words = []
    if has_speed_adjective and stated.speed is not None:
        words.append(choose(rng, SPEED_ADJECTIVES[stated.speed]))
    if stated.size is not None:
        words.append(choose(rng, SIZE_WORDS[stated.size]))
    if stated.color is not None:
        words.append(choose(rng, OBJECT_COLOR_WORDS[stated.color]))
    words.append(choose(rng, SHAPE_WORDS[stated.shape]))
    if rng.random() < SHORT_ARTICLE_PROBABILITY:
        words.insert(0, _article(words[0]))
    return " ".join(words)


def _short_motion(
    stated: PromptAttributes, rng: np.random.Generator, has_speed_adjective: bool
) -> str:
    adverb = ""
    if stated.speed is not None and not has_speed_adjective:
        adverb = choose(rng, SPEED_ADVERBS[stated.speed])
    if stated.direction is None:
        return _join(choose(rng, ("", *MOTION_VERBS)), adverb) if adverb else ""
    direction = choose(rng, DIRECTION_PHRASES[stated.direction])
    verb = choose(rng, ("", *MOTION_VERBS))
    words = (verb, direction, adverb) if rng.random() < 0.7 else (verb, adverb, direction)
    return _join(*words)


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _join(*words: str) -> str:
    return " ".join(w for w in words if w)


def _tidy(pieces: Sequence[str]) -> str:
    """Join caption pieces with single spaces, dropping empty ones and stray separators."""
    text = ""
    for piece in pieces:
        if not piece or (piece.strip() in ",:" and not text):
            continue
        if piece.strip() in ",:":
            text = text.rstrip() + piece
        else:
            text = f"{text} {piece}" if text and not text.endswith(" ") else text + piece
    return text.strip().rstrip(",:").strip()

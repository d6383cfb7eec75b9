"""The words of the shapes world: how captions say each attribute, and what the parser accepts.

Captions draw their wording from these tables and the parser reads the same tables, so every
word a caption can contain is known to the parser. The parser also accepts plurals of the shape
nouns and the bigram "navy blue".
"""

from __future__ import annotations

from vpt.world.vocabulary import (
    Background,
    Color,
    Direction,
    Shape,
    Size,
    Speed,
)

SHAPE_WORDS: dict[Shape, tuple[str, ...]] = {
    Shape.CIRCLE: ("circle", "disc", "disk", "ball"),
    Shape.SQUARE: ("square", "box", "block"),
    Shape.TRIANGLE: ("triangle",),
}
"""Nouns for each shape; the first is canonical."""

OBJECT_COLOR_WORDS: dict[Color, tuple[str, ...]] = {
    Color.RED: ("red",),
    Color.GREEN: ("green",),
    Color.BLUE: ("blue",),
    Color.YELLOW: ("yellow",),
    Color.MAGENTA: ("magenta", "fuchsia"),
    Color.CYAN: ("cyan", "aqua"),
    Color.WHITE: ("white",),
}
"""Adjectives for each object color; the first is canonical."""

BACKGROUND_COLOR_WORDS: dict[Background, tuple[str, ...]] = {
    Background.BLACK: ("black",),
    Background.GRAY: ("gray", "grey"),
    Background.NAVY: ("navy",),
    Background.WHITE: ("white",),
}
"""Adjectives for each background color; the first is canonical."""

SIZE_WORDS: dict[Size, tuple[str, ...]] = {
    Size.SMALL: ("small", "tiny", "little"),
    Size.LARGE: ("large", "big", "huge"),
}
"""Adjectives for each size."""

SPEED_ADVERBS: dict[Speed, tuple[str, ...]] = {
    Speed.SLOW: ("slowly", "gently"),
    Speed.FAST: ("fast", "quickly", "rapidly", "swiftly"),
}
"""Adverbs for each speed, placed after the verb."""

SPEED_ADJECTIVES: dict[Speed, tuple[str, ...]] = {
    Speed.SLOW: ("slow",),
    Speed.FAST: ("fast", "quick", "rapid", "swift"),
}
"""Adjectives for each speed, placed before the noun."""

DIRECTION_PHRASES: dict[Direction, tuple[str, ...]] = {
    Direction.LEFT: ("left", "to the left", "leftward", "leftwards"),
    Direction.RIGHT: ("right", "to the right", "rightward", "rightwards"),
    Direction.UP: ("up", "upward", "upwards"),
    Direction.DOWN: ("down", "downward", "downwards"),
}
"""Phrases for each direction, placed after the verb."""

MOTION_VERBS: tuple[str, ...] = (
    "moving",
    "going",
    "heading",
    "drifting",
    "sliding",
    "gliding",
    "travelling",
)
"""Verbs of motion (they carry no attribute)."""

BACKGROUND_NOUNS: tuple[str, ...] = ("background", "backdrop", "bg")
"""Nouns that make the color before them the background color."""

BACKGROUND_PREPOSITIONS: tuple[str, ...] = ("on", "over", "against", "onto", "atop")
"""Prepositions that make the color after them the background color."""

BACKGROUND_SKIPPABLE: tuple[str, ...] = ("a", "an", "the", "plain", "solid", "flat", "uniform")
"""Words allowed between a background preposition and its color."""

QUALITY_PHRASES: tuple[str, ...] = (
    "sharp edges, smooth motion",
    "crisp edges, steady lighting",
    "in sharp focus, smooth steady motion",
    "clean render, stable lighting",
    "high quality, sharp edges, smooth motion",
    "crisp and clean, smooth motion",
)
"""Quality descriptions that detailed captions of clean clips end with."""

FILLER_WORDS: frozenset[str] = frozenset(
    {
        *MOTION_VERBS,
        *BACKGROUND_NOUNS,
        *BACKGROUND_PREPOSITIONS,
        *BACKGROUND_SKIPPABLE,
        *(word for phrase in QUALITY_PHRASES for word in phrase.replace(",", " ").split()),
        "move",
        "moves",
        "goes",
        "heads",
        "drifts",
        "slides",
        "glides",
        "travels",
        "traveling",
        "travelling",
        "with",
        "in",
        "of",
        "to",
        "and",
        "is",
        "that",
        "across",
        "frame",
        "screen",
        "scene",
        "video",
        "clip",
        "shot",
        "animation",
        "shape",
        "object",
        "colored",
        "coloured",
        "edge",
        "edged",
        "sharply",
        "smoothly",
        "focused",
        "steadily",
        "detailed",
        "quality",
        "high",
        "moving",
    }
)
"""Words that carry no attribute and are silently accepted."""

"""The fixed vocabulary of the shapes world: what a clip can show and what a prompt can ask for.

One object per clip. An object has a shape, a color and a size, moves in one direction at one
speed, over a plain background whose color is never the object's color. `Attributes` is a full
description of a clip; `PromptAttributes` is what a prompt (or caption) states, any part of which
may be left open.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

import numpy as np

RGB = tuple[int, int, int]
T = TypeVar("T")


class Shape(StrEnum):
    """The object's outline."""

    CIRCLE = "circle"
    SQUARE = "square"
    TRIANGLE = "triangle"


class Color(StrEnum):
    """The object's fill color."""

    RED = "red"
    GREEN = "green"
    BLUE = "blue"
    YELLOW = "yellow"
    MAGENTA = "magenta"
    CYAN = "cyan"
    WHITE = "white"


class Size(StrEnum):
    """The object's size class (see `WorldConfig` for the radii)."""

    SMALL = "small"
    LARGE = "large"


class Direction(StrEnum):
    """The direction of the object's constant-velocity motion, in screen terms."""

    LEFT = "left"
    RIGHT = "right"
    UP = "up"
    DOWN = "down"


class Speed(StrEnum):
    """The object's speed class (see `WorldConfig` for pixels per frame)."""

    SLOW = "slow"
    FAST = "fast"


class Background(StrEnum):
    """The plain background color."""

    BLACK = "black"
    GRAY = "gray"
    NAVY = "navy"
    WHITE = "white"


class AttributeName(StrEnum):
    """The six attributes of a clip, named as the fields of `Attributes`."""

    SHAPE = "shape"
    COLOR = "color"
    SIZE = "size"
    DIRECTION = "direction"
    SPEED = "speed"
    BACKGROUND = "background"


ATTRIBUTE_TYPES: dict[AttributeName, type[StrEnum]] = {
    AttributeName.SHAPE: Shape,
    AttributeName.COLOR: Color,
    AttributeName.SIZE: Size,
    AttributeName.DIRECTION: Direction,
    AttributeName.SPEED: Speed,
    AttributeName.BACKGROUND: Background,
}
"""The enum holding the values of each attribute."""

OBJECT_RGB: dict[Color, RGB] = {
    Color.RED: (230, 40, 40),
    Color.GREEN: (40, 200, 60),
    Color.BLUE: (50, 90, 235),
    Color.YELLOW: (240, 220, 40),
    Color.MAGENTA: (220, 50, 220),
    Color.CYAN: (40, 220, 220),
    Color.WHITE: (245, 245, 245),
}
"""sRGB fill of each object color: saturated and far apart from one another."""

BACKGROUND_RGB: dict[Background, RGB] = {
    Background.BLACK: (12, 12, 12),
    Background.GRAY: (128, 128, 128),
    Background.NAVY: (20, 28, 88),
    Background.WHITE: (245, 245, 245),
}
"""sRGB of each background color."""


def is_valid_pair(color: Color, background: Background) -> bool:
    """Whether an object of `color` may appear on `background` (never the same color)."""
    return color.value != background.value


def valid_color_background_pairs() -> tuple[tuple[Color, Background], ...]:
    """All allowed (object color, background) pairs, in declaration order."""
    return tuple((c, b) for c in Color for b in Background if is_valid_pair(c, b))


@dataclass(frozen=True)
class Attributes:
    """A full description of one clip."""

    shape: Shape
    """The object's outline."""
    color: Color
    """The object's fill color."""
    size: Size
    """The object's size class."""
    direction: Direction
    """Where the object moves."""
    speed: Speed
    """How fast the object moves."""
    background: Background
    """The background color; never the object's color."""

    def __post_init__(self) -> None:
        for name in AttributeName:
            object.__setattr__(self, name.value, coerce_value(name, getattr(self, name.value)))
        if not is_valid_pair(self.color, self.background):
            raise ValueError(
                f"a {self.color} object on a {self.background} background is not allowed: "
                "the background must differ from the object color"
            )

    @classmethod
    def sample(cls, rng: np.random.Generator) -> Attributes:
        """Draw uniformly over all valid combinations."""
        pairs = valid_color_background_pairs()
        color, background = pairs[int(rng.integers(len(pairs)))]
        return cls(
            shape=choose(rng, tuple(Shape)),
            color=color,
            size=choose(rng, tuple(Size)),
            direction=choose(rng, tuple(Direction)),
            speed=choose(rng, tuple(Speed)),
            background=background,
        )

    def get(self, name: AttributeName) -> StrEnum:
        """The value of attribute `name`."""
        value: StrEnum = getattr(self, name.value)
        return value

    def to_prompt(self, names: tuple[AttributeName, ...] | None = None) -> PromptAttributes:
        """The `PromptAttributes` stating the attributes in `names` (all six when None)."""
        chosen = set(AttributeName) if names is None else set(names)
        return PromptAttributes(
            shape=self.shape if AttributeName.SHAPE in chosen else None,
            color=self.color if AttributeName.COLOR in chosen else None,
            size=self.size if AttributeName.SIZE in chosen else None,
            direction=self.direction if AttributeName.DIRECTION in chosen else None,
            speed=self.speed if AttributeName.SPEED in chosen else None,
            background=self.background if AttributeName.BACKGROUND in chosen else None,
        )


@dataclass(frozen=True)
class PromptAttributes:
    """What a prompt or caption states about a clip; None means left open."""

    shape: Shape | None = None
    """The requested outline, if stated."""
    color: Color | None = None
    """The requested object color, if stated."""
    size: Size | None = None
    """The requested size class, if stated."""
    direction: Direction | None = None
    """The requested direction of motion, if stated."""
    speed: Speed | None = None
    """The requested speed class, if stated."""
    background: Background | None = None
    """The requested background color, if stated."""

    def __post_init__(self) -> None:
        for name in AttributeName:
            value = getattr(self, name.value)
            if value is not None:
                object.__setattr__(self, name.value, coerce_value(name, value))

    @classmethod
    def from_values(cls, values: Mapping[AttributeName, object]) -> PromptAttributes:
        """Build from a mapping of attribute to value (missing or None = open)."""
        kwargs: dict[str, Any] = {name.value: values.get(name) for name in AttributeName}
        return cls(**kwargs)

    def get(self, name: AttributeName) -> StrEnum | None:
        """The value of attribute `name`, or None when it is left open."""
        value: StrEnum | None = getattr(self, name.value)
        return value

    @property
    def mentioned(self) -> tuple[AttributeName, ...]:
        """The attributes that are stated, in `AttributeName` order."""
        return tuple(n for n in AttributeName if self.get(n) is not None)

    @property
    def is_complete(self) -> bool:
        """Whether all six attributes are stated."""
        return len(self.mentioned) == len(AttributeName)

    def to_attributes(self) -> Attributes:
        """The full `Attributes`; raises ValueError naming what is missing if any is open."""
        missing = [n.value for n in AttributeName if self.get(n) is None]
        if missing:
            raise ValueError(f"prompt leaves {', '.join(missing)} open; cannot build Attributes")
        assert self.shape and self.color and self.size and self.direction and self.speed
        assert self.background is not None
        return Attributes(
            self.shape, self.color, self.size, self.direction, self.speed, self.background
        )

    def agrees_with(self, attributes: Attributes) -> bool:
        """Whether every stated attribute equals the corresponding one of `attributes`."""
        return all(self.get(n) == attributes.get(n) for n in self.mentioned)


def all_attribute_combinations() -> tuple[Attributes, ...]:
    """Every valid `Attributes` (1,296 of them), in a fixed order."""
    return tuple(
        Attributes(shape, color, size, direction, speed, background)
        for shape, (color, background), size, direction, speed in itertools.product(
            Shape, valid_color_background_pairs(), Size, Direction, Speed
        )
    )


def coerce_value(name: AttributeName, value: object) -> StrEnum:
    """`value` as a member of attribute `name`'s enum; ValueError listing the choices if not."""
    enum = ATTRIBUTE_TYPES[name]
    if isinstance(value, str) and value in enum._value2member_map_:
        return enum(value)
    choices = ", ".join(member.value for member in enum)
    raise ValueError(f"{name.value}={value!r} is not one of: {choices}")


def choose(rng: np.random.Generator, options: Sequence[T]) -> T:
    """One of `options`, uniformly."""
    return options[int(rng.integers(len(options)))]

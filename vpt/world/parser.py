"""Reading the attributes a free-text prompt asks for.

The parser is a small rule-based reader over the words of `vpt.world.lexicon`. It accepts any
word order, case and punctuation, filler words and synonyms, and leaves unstated attributes open.
A color is the background color when a background noun follows it ("black background") or a
background preposition precedes it within its clause ("on a black ...", "over navy"); otherwise
it is the object color. It never guesses: words it does not know are reported in
`unknown_words`, and contradictions (two shapes, a red background, a white object on white) are
reported in `conflicts` and leave the attribute open.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from enum import StrEnum

from vpt.world.lexicon import (
    BACKGROUND_COLOR_WORDS,
    BACKGROUND_NOUNS,
    BACKGROUND_PREPOSITIONS,
    BACKGROUND_SKIPPABLE,
    DIRECTION_PHRASES,
    FILLER_WORDS,
    OBJECT_COLOR_WORDS,
    SHAPE_WORDS,
    SIZE_WORDS,
    SPEED_ADJECTIVES,
    SPEED_ADVERBS,
)
from vpt.world.vocabulary import (
    AttributeName,
    PromptAttributes,
)

CLAUSE_BREAK = re.compile(r"[,;:.!?()\[\]\n]+")
WORD = re.compile(r"[a-z0-9']+")
COLOR_LINKS = ("colored", "coloured")


@dataclass(frozen=True)
class ParsedPrompt:
    """What a prompt asks for, and what the parser could not read."""

    attributes: PromptAttributes
    """The attributes the prompt states unambiguously; None where open or contradictory."""
    unknown_words: tuple[str, ...]
    """Words outside the vocabulary, in order of first appearance."""
    conflicts: tuple[str, ...]
    """Contradictions found, e.g. "shape: circle vs square"."""

    @property
    def is_clean(self) -> bool:
        """Whether every word was understood and nothing contradicts."""
        return not self.unknown_words and not self.conflicts


def _word_table() -> dict[str, tuple[AttributeName, StrEnum]]:
    """Every non-color attribute word, with the attribute and value it names."""
    table: dict[str, tuple[AttributeName, StrEnum]] = {}
    for shape, words in SHAPE_WORDS.items():
        for word in words:
            table[word] = (AttributeName.SHAPE, shape)
            table[word + ("es" if word.endswith("x") else "s")] = (AttributeName.SHAPE, shape)
    for size, words in SIZE_WORDS.items():
        table.update({word: (AttributeName.SIZE, size) for word in words})
    for speeds in (SPEED_ADVERBS, SPEED_ADJECTIVES):
        for speed, words in speeds.items():
            table.update({word: (AttributeName.SPEED, speed) for word in words})
    for direction, phrases in DIRECTION_PHRASES.items():
        table.update(
            {phrase.split()[-1]: (AttributeName.DIRECTION, direction) for phrase in phrases}
        )
    return table


ATTRIBUTE_WORDS = _word_table()
OBJECT_COLORS = {word: color for color, words in OBJECT_COLOR_WORDS.items() for word in words}
BACKGROUND_COLORS = {word: bg for bg, words in BACKGROUND_COLOR_WORDS.items() for word in words}


def parse_prompt(text: str) -> ParsedPrompt:
    """Read the attributes `text` states; see the module docstring for the rules."""
    found: dict[AttributeName, list[StrEnum]] = defaultdict(list)
    unknown: list[str] = []
    conflicts: list[str] = []
    for clause in CLAUSE_BREAK.split(text.lower()):
        words = _merge_bigrams(WORD.findall(clause))
        for index, word in enumerate(words):
            if word in ATTRIBUTE_WORDS:
                name, value = ATTRIBUTE_WORDS[word]
                found[name].append(value)
            elif word in OBJECT_COLORS or word in BACKGROUND_COLORS:
                _read_color(words, index, found, conflicts)
            elif word not in FILLER_WORDS and word not in unknown:
                unknown.append(word)
    values: dict[AttributeName, StrEnum | None] = {}
    for name in AttributeName:
        distinct = list(dict.fromkeys(found.get(name, [])))
        if len(distinct) > 1:
            conflicts.append(f"{name.value}: {' vs '.join(v.value for v in distinct)}")
        values[name] = distinct[0] if len(distinct) == 1 else None
    color, background = values[AttributeName.COLOR], values[AttributeName.BACKGROUND]
    if color is not None and background is not None and color.value == background.value:
        conflicts.append(f"a {color} object cannot be on a {background} background")
        values[AttributeName.COLOR] = values[AttributeName.BACKGROUND] = None
    attributes = PromptAttributes.from_values(values)
    return ParsedPrompt(attributes, tuple(unknown), tuple(conflicts))


def _merge_bigrams(words: list[str]) -> list[str]:
    """Turn "navy blue" into "navy"."""
    merged: list[str] = []
    for word in words:
        if word == "blue" and merged and merged[-1] == "navy":
            continue
        merged.append(word)
    return merged


def _read_color(
    words: list[str],
    index: int,
    found: dict[AttributeName, list[StrEnum]],
    conflicts: list[str],
) -> None:
    """Record the color word at `index` as the object or the background color."""
    word = words[index]
    if _is_background_position(words, index):
        if word in BACKGROUND_COLORS:
            found[AttributeName.BACKGROUND].append(BACKGROUND_COLORS[word])
        else:
            conflicts.append(f"{word} is not a background color")
    elif word in OBJECT_COLORS:
        found[AttributeName.COLOR].append(OBJECT_COLORS[word])
    else:
        conflicts.append(f"{word} is not an object color")


def _is_background_position(words: list[str], index: int) -> bool:
    """Whether the color at `index` is followed by a background noun or follows a preposition."""
    after = index + 1
    while after < len(words) and words[after] in COLOR_LINKS:
        after += 1
    if after < len(words) and words[after] in BACKGROUND_NOUNS:
        return True
    before = index - 1
    while before >= 0 and words[before] in BACKGROUND_SKIPPABLE:
        before -= 1
    return before >= 0 and words[before] in BACKGROUND_PREPOSITIONS

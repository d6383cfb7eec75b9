"""Fixed, versioned evaluation prompt sets: one prompt per line, `#` comments, validated.

Packaged sets live in `vpt/eval/prompts/NAME.txt` and are never edited once published (a
changed set gets a new version, e.g. `shapes_eval_v2`), so GSB numbers stay comparable across
runs. `draft_prompt_set` wrote `shapes_eval_v1`: short user-style captions
(`vpt.world.short_caption`) of the held-out attribute combinations (`vpt.world.splits`), which
training data never contains, taken in a seeded random order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vpt.world.captions import short_caption
from vpt.world.parser import parse_prompt
from vpt.world.splits import held_out_combinations
from vpt.world.vocabulary import ATTRIBUTE_TYPES, PromptAttributes

PROMPT_SET_DIR = Path(__file__).resolve().parent / "prompts"
"""Where packaged prompt sets live."""
DEFAULT_PROMPT_SET = "shapes_eval_v1"
"""The prompt set `vpt eval gsb` uses unless told otherwise."""
V1_COUNT = 100
"""Prompts in shapes_eval_v1."""
V1_SEED = 2026
"""Seed shapes_eval_v1 was drawn with."""
MAX_REDRAWS = 50
"""Captions drawn per prompt before giving up on finding one not already in the set."""


@dataclass(frozen=True)
class PromptSet:
    """A validated prompt set."""

    name: str
    """The file's stem, e.g. shapes_eval_v1."""
    path: Path
    """The file it was read from."""
    prompts: tuple[str, ...]
    """The prompts, in file order."""
    attributes: tuple[PromptAttributes, ...]
    """What each prompt states, as parsed."""

    def __len__(self) -> int:
        return len(self.prompts)


def packaged_prompt_sets() -> tuple[str, ...]:
    """Names of the packaged prompt sets."""
    return tuple(sorted(path.stem for path in PROMPT_SET_DIR.glob("*.txt")))


def resolve_prompt_set(path_or_name: str | Path) -> Path:
    """The file of a prompt set given as a path or as a packaged name (ValueError if neither)."""
    candidate = Path(path_or_name)
    if candidate.is_file():
        return candidate
    packaged = PROMPT_SET_DIR / f"{path_or_name}.txt"
    if isinstance(path_or_name, str) and "/" not in path_or_name and packaged.is_file():
        return packaged
    raise ValueError(
        f"prompt set {str(path_or_name)!r}: no such file and no packaged set of that name; "
        f"give a text file with one prompt per line or one of {', '.join(packaged_prompt_sets())}"
    )


def load_prompt_set(path_or_name: str | Path) -> PromptSet:
    """Read and validate a prompt set: every line parses with no unknown word or conflict.

    Blank lines and lines starting with `#` are skipped. Errors name the file and line.
    """
    path = resolve_prompt_set(path_or_name)
    prompts: list[str] = []
    attributes: list[PromptAttributes] = []
    first_line: dict[str, int] = {}
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        where = f"{path}:{number}: prompt {text!r}"
        parsed = parse_prompt(text)
        if parsed.unknown_words:
            raise ValueError(
                f"{where} has unknown word(s) {', '.join(repr(w) for w in parsed.unknown_words)}; "
                "use the world's vocabulary (`vpt world vocabulary`)"
            )
        if parsed.conflicts:
            raise ValueError(f"{where} contradicts itself: {'; '.join(parsed.conflicts)}")
        if not parsed.attributes.mentioned:
            raise ValueError(f"{where} states no attribute; name at least the shape")
        if text in first_line:
            raise ValueError(f"{where} repeats line {first_line[text]}; list each prompt once")
        first_line[text] = number
        prompts.append(text)
        attributes.append(parsed.attributes)
    if not prompts:
        raise ValueError(f"{path}: no prompts (only blank or # lines); write one per line")
    return PromptSet(path.stem, path, tuple(prompts), tuple(attributes))


def uncovered_values(attributes: Sequence[PromptAttributes]) -> list[str]:
    """`name=value` of every vocabulary value no prompt states (empty = full coverage)."""
    stated = {(name, a.get(name)) for a in attributes for name in a.mentioned}
    return [
        f"{name.value}={value.value}"
        for name, values in ATTRIBUTE_TYPES.items()
        for value in values
        if (name, value) not in stated
    ]


def draft_prompt_set(count: int = V1_COUNT, seed: int = V1_SEED) -> list[str]:
    """`count` distinct short captions of held-out combinations, in a seeded random order.

    Raises ValueError if they leave some vocabulary value unstated (pick another seed).
    """
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    combinations = held_out_combinations()
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(combinations))
    prompts: list[str] = []
    attributes: list[PromptAttributes] = []
    for index in range(count):
        combination = combinations[int(order[index % len(combinations)])]
        for _ in range(MAX_REDRAWS):
            caption = short_caption(combination, rng)
            if caption.text not in prompts:
                break
        else:
            raise ValueError(f"no new caption for {combination} in {MAX_REDRAWS} draws")
        prompts.append(caption.text)
        attributes.append(caption.attributes)
    missing = uncovered_values(attributes)
    if missing:
        raise ValueError(
            f"{count} prompts from seed {seed} never state {', '.join(missing)}; "
            "use more prompts or another seed"
        )
    return prompts


def format_prompt_set(name: str, prompts: Sequence[str], count: int, seed: int) -> str:
    """The text of a prompt-set file: a header saying how it was made, then one prompt a line."""
    header = [
        f"# {name}: {len(prompts)} short user-style evaluation prompts for `vpt eval gsb`.",
        "# Frozen: never edit a published set; write the next version instead.",
        f"# Generated by vpt.eval.prompt_set.draft_prompt_set(count={count}, seed={seed}):",
        "# short captions (vpt.world.short_caption) of the held-out attribute combinations",
        "# (vpt.world.splits), in a seeded random order, duplicates redrawn; every value of",
        "# every attribute is stated by at least one prompt.",
    ]
    return "\n".join([*header, *prompts]) + "\n"

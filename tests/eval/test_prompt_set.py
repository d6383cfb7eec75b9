"""Evaluation prompt sets: the packaged v1 is valid, reproducible and covers the vocabulary;
bad files are refused with the line that is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from vpt.eval.prompt_set import (
    PROMPT_SET_DIR,
    V1_COUNT,
    V1_SEED,
    draft_prompt_set,
    format_prompt_set,
    load_prompt_set,
    uncovered_values,
)
from vpt.world.splits import held_out_combinations


def test_v1_parses_cleanly_and_states_every_vocabulary_value() -> None:
    prompt_set = load_prompt_set("shapes_eval_v1")
    assert len(prompt_set) == V1_COUNT == len(set(prompt_set.prompts))
    assert uncovered_values(prompt_set.attributes) == []
    held_out = held_out_combinations()
    for stated in prompt_set.attributes:
        assert any(stated.agrees_with(combination) for combination in held_out)


def test_v1_is_what_its_header_says_generated_it() -> None:
    path = PROMPT_SET_DIR / "shapes_eval_v1.txt"
    expected = format_prompt_set(
        "shapes_eval_v1", draft_prompt_set(V1_COUNT, V1_SEED), V1_COUNT, V1_SEED
    )
    assert path.read_text() == expected, (
        "draft_prompt_set no longer reproduces shapes_eval_v1 (captions or splits changed); "
        "keep v1 frozen and publish shapes_eval_v2"
    )


def test_a_path_loads_and_comments_and_blank_lines_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "mine.txt"
    path.write_text("# my set\n\nred circle\n  blue square moving up  \n")
    prompt_set = load_prompt_set(path)
    assert prompt_set.name == "mine" and prompt_set.prompts == (
        "red circle",
        "blue square moving up",
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "red circle\n# note\npurple circle\n",
            r":3: prompt 'purple circle' has unknown word\(s\) 'purple'",
        ),
        ("red circle\nred square circle\n", r":2: .* contradicts itself: shape: square vs circle"),
        ("red circle\nmoving\n", r":2: .* states no attribute"),
        ("red circle\nblue box\nred circle\n", r":3: .* repeats line 1"),
        ("# only a comment\n\n", "no prompts"),
    ],
)
def test_bad_lines_are_refused_with_their_line_number(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "bad.txt"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        load_prompt_set(path)


def test_a_missing_set_lists_the_packaged_ones() -> None:
    with pytest.raises(ValueError, match=r"no such file .* shapes_eval_v1"):
        load_prompt_set("shapes_eval_v9")

"""The rule-based baseline enhancer: the user's words kept, quality words appended, accepted by
the enhancer's own checks."""

from __future__ import annotations

import pytest

from enhancer.prompt_enhancer import PromptEnhancer
from enhancer.suffix import DEFAULT_SUFFIX, SuffixBackend
from vpt.world import parse_prompt


def test_suffix_rewrite_keeps_the_prompt_and_passes_the_intent_check() -> None:
    enhancer = PromptEnhancer(SuffixBackend())
    results = enhancer.enhance_batch(["red circle moving left.", "a tiny blue square, going up"])
    assert [r.prompt for r in results] == [
        f"red circle moving left, {DEFAULT_SUFFIX}",
        f"a tiny blue square, going up, {DEFAULT_SUFFIX}",
    ]
    assert not any(r.fell_back for r in results)
    assert all(r.backend == "suffix" and r.adapter is None for r in results)
    for result in results:
        assert parse_prompt(result.prompt).attributes == parse_prompt(result.user_prompt).attributes


def test_empty_suffix_is_refused() -> None:
    with pytest.raises(ValueError, match="non-empty suffix"):
        SuffixBackend("  ")

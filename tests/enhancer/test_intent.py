"""Known answers of the rewrite checks: cleaning, format limits, intent preservation."""

from __future__ import annotations

import pytest

from enhancer.intent import RewriteLimits, check_intent, check_rewrite, clean_rewrite
from vpt.world import AttributeName


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  a red circle moving left  ", "a red circle moving left"),
        ('"a red circle moving left"', "a red circle moving left"),
        ("Enhanced prompt: a red circle\nmoving left", "a red circle"),
        ("Prompt - a red circle", "a red circle"),
        ("\n\nfirst paragraph here\n\nsecond", "first paragraph here"),
        ("", ""),
    ],
)
def test_clean_rewrite(raw: str, expected: str) -> None:
    assert clean_rewrite(raw) == expected


def test_rewrite_that_keeps_everything_and_adds_detail_is_preserved() -> None:
    check = check_intent(
        "red ball going left", "a large red circle moving left slowly over a black background"
    )
    assert check.is_preserved
    assert set(check.kept) == {AttributeName.SHAPE, AttributeName.COLOR, AttributeName.DIRECTION}
    assert check.rewrite.background is not None  # filled in: allowed


def test_synonyms_count_as_kept() -> None:
    assert check_intent(
        "aqua box heading leftwards", "a cyan square moving to the left"
    ).is_preserved


def test_dropped_attribute_is_not_preserved() -> None:
    check = check_intent("red ball going left", "a red circle on a black background")
    assert check.dropped == (AttributeName.DIRECTION,)
    assert check.contradicted == ()
    assert not check.is_preserved


def test_changed_attribute_is_a_contradiction() -> None:
    check = check_intent("red ball going left", "a blue circle moving left")
    assert check.contradicted == (AttributeName.COLOR,)
    assert check.dropped == ()
    assert not check.is_preserved


def test_self_contradicting_rewrite_is_a_contradiction() -> None:
    check = check_intent("a circle", "a circle, no, a square")
    assert check.contradicted == (AttributeName.SHAPE,)
    assert check.conflicts
    assert not check.is_preserved


def test_object_on_same_colored_background_is_a_contradiction() -> None:
    check = check_intent("white ball", "a white circle on a white background")
    assert AttributeName.COLOR in check.contradicted
    assert not check.is_preserved


def test_format_limits() -> None:
    limits = RewriteLimits(min_words=3, max_words=8, max_chars=60)
    ok = check_rewrite("red ball", "a red circle moving left", limits)
    assert ok.is_accepted and ok.reason is None
    short = check_rewrite("red ball", "red circle", limits)
    assert not short.is_accepted and "fewer than 3" in (short.reason or "")
    long = check_rewrite("red ball", "a red circle " + "very " * 10, limits)
    assert not long.is_accepted and "more than 8" in (long.reason or "")
    empty = check_rewrite("red ball", "   ", limits)
    assert empty.reason == "rewrite is empty"


def test_rejection_reasons_name_the_attribute() -> None:
    limits = RewriteLimits()
    verdict = check_rewrite("red ball going left", "a blue circle moving left", limits)
    assert verdict.reason == "rewrite contradicts the user's prompt: color red->blue"
    verdict = check_rewrite("red ball going left", "a red circle on a black background", limits)
    assert verdict.reason == "rewrite drops direction"


def test_bad_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="min_words"):
        RewriteLimits(min_words=10, max_words=5)

"""Checks a rewrite must pass before it replaces the user's prompt: format limits, then intent
preservation judged by the world's prompt parser.

Implemented in the core package (`vpt.prompt_rewriting`, where the serving service uses it too)
and re-exported under this name; see that module for the rules.
"""

from __future__ import annotations

from vpt.prompt_rewriting import (
    LABEL,
    QUOTES,
    IntentCheck,
    RewriteLimits,
    RewriteVerdict,
    check_intent,
    check_rewrite,
    clean_rewrite,
    format_problem,
)

__all__ = [
    "LABEL",
    "QUOTES",
    "IntentCheck",
    "RewriteLimits",
    "RewriteVerdict",
    "check_intent",
    "check_rewrite",
    "clean_rewrite",
    "format_problem",
]

"""A rule-based rewriter: the user's prompt kept word for word, with quality words appended.

The cheapest prompt enhancer there is, and the baseline a trained one has to beat: it keeps every
attribute the user gave (nothing is reworded) and adds the quality description that the
detailed captions of clean training clips end with, so it measures how much of an enhancer's
gain the quality words alone give in front of a generator. It speaks the `RewriteBackend`
protocol, so the enhancer's checks and fallback apply to it as to an LLM.
"""

from __future__ import annotations

from collections.abc import Sequence

from enhancer.prompt_enhancer import BackendError
from vpt.world.lexicon import QUALITY_PHRASES

DEFAULT_SUFFIX = QUALITY_PHRASES[0]
""""sharp edges, smooth motion"."""


class SuffixBackend:
    """Appends a fixed phrase to every prompt."""

    name = "suffix"

    def __init__(self, suffix: str = DEFAULT_SUFFIX) -> None:
        if not suffix.strip():
            raise ValueError("SuffixBackend needs a non-empty suffix")
        self.suffix = suffix.strip()

    @property
    def adapter(self) -> str | None:
        return None

    def rewrite(
        self, prompts: Sequence[str], timeout_s: float, temperature: float | None = None
    ) -> list[str | BackendError]:
        """The same rewrite at any temperature: the rule is deterministic."""
        return [f"{prompt.strip().rstrip(' ,.;:')}, {self.suffix}" for prompt in prompts]

"""A generation system with the prompt enhancer in front, for GSB comparisons against the same
generator without it (`vpt.eval.comparison.compare_systems`).

The judge scores every video against the *user's* prompt, so a rewrite that helps rendering but
changes what was asked for loses on text alignment. Each distinct prompt is enhanced once; every
seed of that prompt uses the same rewrite (greedy decoding makes it deterministic anyway).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from enhancer.prompt_enhancer import EnhancedPrompt, PromptEnhancer
from vpt.eval.systems import System


@dataclass
class EnhancedSystem:
    """`inner` generating from what `enhancer` makes of each prompt."""

    enhancer: PromptEnhancer
    """Rewrites the prompts."""
    inner: System
    """The generation system (e.g. a `CheckpointSystem`)."""
    name: str
    """How reports name this system."""
    batch_size: int = 8
    """Prompts per enhancer call."""
    enhanced: dict[str, EnhancedPrompt] = field(default_factory=dict)
    """Every prompt enhanced so far, by user prompt."""

    def generate(self, prompts: Sequence[str], seeds: Sequence[int]) -> np.ndarray:
        """uint8 videos (B, F, H, W, 3), one per (prompt, seed), from the enhanced prompts."""
        pending = [p for p in dict.fromkeys(prompts) if p not in self.enhanced]
        for start in range(0, len(pending), self.batch_size):
            batch = pending[start : start + self.batch_size]
            self.enhanced.update(zip(batch, self.enhancer.enhance_batch(batch), strict=True))
        return self.inner.generate([self.enhanced[p].prompt for p in prompts], seeds)

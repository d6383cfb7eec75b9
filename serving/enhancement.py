"""The prompt-enhancement hook in front of the generator: a client with timeout and fallback.

`PromptEnhancer` is what an enhancer client implements (the enhancer service of a later stage
plugs in here); `EnhancementHook.enhance` calls it under a timeout and falls back to the user's
prompt on timeout, error or an empty answer, saying which happened, so a slow or broken
enhancer never fails a generation.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Literal, Protocol

EnhancementResult = Literal["enhanced", "unchanged", "timeout", "error", "empty", "disabled"]


class PromptEnhancer(Protocol):
    """Rewrites a user prompt into the model's caption register."""

    async def enhance(self, prompt: str) -> str: ...


class IdentityEnhancer:
    """A stand-in enhancer that returns the prompt unchanged (wiring tests, local use)."""

    async def enhance(self, prompt: str) -> str:
        return prompt


@dataclass(frozen=True)
class EnhancedPrompt:
    """What the generator will see and how it came about."""

    prompt: str
    """The effective prompt."""
    result: EnhancementResult
    """`enhanced` only when the enhancer returned a different, non-empty prompt."""
    seconds: float
    """Time spent in the hook."""


class EnhancementHook:
    """Calls an optional enhancer with a timeout; never raises for enhancer failures."""

    def __init__(self, enhancer: PromptEnhancer | None, timeout_seconds: float) -> None:
        if timeout_seconds <= 0:
            raise ValueError(f"timeout_seconds must be > 0, got {timeout_seconds}")
        self.enhancer = enhancer
        self.timeout_seconds = timeout_seconds

    async def enhance(self, prompt: str, is_requested: bool) -> EnhancedPrompt:
        loop = asyncio.get_running_loop()
        started = loop.time()
        if not is_requested or self.enhancer is None:
            return EnhancedPrompt(prompt, "disabled", 0.0)
        try:
            answer = await asyncio.wait_for(self.enhancer.enhance(prompt), self.timeout_seconds)
        except TimeoutError:
            return EnhancedPrompt(prompt, "timeout", loop.time() - started)
        except Exception:  # any enhancer failure falls back to the user's prompt
            return EnhancedPrompt(prompt, "error", loop.time() - started)
        seconds = loop.time() - started
        if not isinstance(answer, str) or not answer.strip():
            return EnhancedPrompt(prompt, "empty", seconds)
        if answer == prompt:
            return EnhancedPrompt(prompt, "unchanged", seconds)
        return EnhancedPrompt(answer, "enhanced", seconds)

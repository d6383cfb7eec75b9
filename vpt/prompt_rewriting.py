"""Prompt rewriting by an LLM, without the LLM: what it is asked, how its answer is cleaned, and
the checks a rewrite must pass before it replaces the user's prompt (stage 3 of arXiv
2604.25427, the prompt enhancer). The enhancer service (training, embedded and vLLM backends)
and the serving service (its OpenAI-compatible client) both build on this module, so what the
model learns is exactly what it is later asked and both judge its answers the same way.

- The request: `SYSTEM_PROMPT` + `chat_messages(prompt)`, OpenAI/transformers chat messages.
- The answer: `clean_rewrite` turns raw LLM output into one candidate prompt (first paragraph,
  no quotes or "Prompt:" labels).
- The checks (`check_rewrite`): format limits (`RewriteLimits`), then intent preservation judged
  by the world's prompt parser (`vpt.world.parse_prompt`). Every attribute the user stated must
  be stated by the rewrite with the same value. A rewrite that states another value (or
  contradicts itself, so the parser leaves the attribute open with a conflict) *contradicts* the
  user, a hard failure; one that leaves a stated attribute open *drops* it. Attributes the user
  left open may be filled in freely: that is what an enhancer is for.

No network code here: the services own their clients.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from vpt.world import AttributeName, PromptAttributes, parse_prompt

SYSTEM_PROMPT = (
    "You rewrite short video prompts into one detailed video prompt. Keep every detail the user "
    "gives. State the shape, color, size, direction, speed and background. "
    "Reply with the prompt only."
)
"""The instruction given to the LLM before every user prompt."""

MAX_PROMPT_CHARS = 1000
"""Longest user prompt accepted."""


def chat_messages(prompt: str) -> list[dict[str, str]]:
    """The OpenAI/transformers chat messages asking for a rewrite of `prompt`."""
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": prompt},
    ]


def validate_prompt(prompt: object) -> str:
    """`prompt` stripped; ValueError naming the problem if it is not a usable prompt."""
    if not isinstance(prompt, str):
        raise ValueError(f"prompt must be a string, got {type(prompt).__name__}")
    text = prompt.strip()
    if not text:
        raise ValueError("prompt is empty; describe the video, e.g. 'red circle moving left'")
    if len(text) > MAX_PROMPT_CHARS:
        raise ValueError(f"prompt has {len(text)} characters; the limit is {MAX_PROMPT_CHARS}")
    return text


@dataclass(frozen=True)
class RewriteLimits:
    """Format and length limits of a rewrite."""

    min_words: int = 3
    """Fewest words a rewrite may have."""
    max_words: int = 60
    """Most words a rewrite may have."""
    max_chars: int = 400
    """Most characters a rewrite may have."""

    def __post_init__(self) -> None:
        if not 1 <= self.min_words <= self.max_words:
            raise ValueError(
                f"rewrite limits need 1 <= min_words <= max_words, got {self.min_words}, "
                f"{self.max_words}"
            )
        if self.max_chars < 1:
            raise ValueError(f"rewrite limits: max_chars must be >= 1, got {self.max_chars}")


@dataclass(frozen=True)
class IntentCheck:
    """How a rewrite relates to the attributes its user prompt stated."""

    user: PromptAttributes
    """What the user's prompt states."""
    rewrite: PromptAttributes
    """What the rewrite states."""
    dropped: tuple[AttributeName, ...]
    """User-stated attributes the rewrite leaves open."""
    contradicted: tuple[AttributeName, ...]
    """User-stated attributes the rewrite states differently or contradicts itself on."""
    conflicts: tuple[str, ...]
    """The parser's contradictions inside the rewrite."""

    @property
    def is_preserved(self) -> bool:
        """Whether every user-stated attribute is kept and nothing contradicts."""
        return not self.dropped and not self.contradicted and not self.conflicts

    @property
    def kept(self) -> tuple[AttributeName, ...]:
        """User-stated attributes the rewrite states with the same value."""
        lost = set(self.dropped) | set(self.contradicted)
        return tuple(name for name in self.user.mentioned if name not in lost)


@dataclass(frozen=True)
class RewriteVerdict:
    """Whether a candidate rewrite may be used, and why not."""

    text: str
    """The cleaned candidate."""
    intent: IntentCheck
    """The intent-preservation check."""
    format_problem: str | None
    """What breaks the format limits, or None."""

    @property
    def is_accepted(self) -> bool:
        """Whether the candidate passes the format limits and preserves intent."""
        return self.format_problem is None and self.intent.is_preserved

    @property
    def reason(self) -> str | None:
        """Why the candidate was rejected, or None when accepted."""
        if self.format_problem is not None:
            return self.format_problem
        intent = self.intent
        if intent.conflicts:
            return f"rewrite contradicts itself: {'; '.join(intent.conflicts)}"
        if intent.contradicted:
            changed = ", ".join(
                f"{n.value} {intent.user.get(n)}->{intent.rewrite.get(n)}"
                for n in intent.contradicted
            )
            return f"rewrite contradicts the user's prompt: {changed}"
        if intent.dropped:
            return f"rewrite drops {', '.join(n.value for n in intent.dropped)}"
        return None


LABEL = re.compile(
    r"^\s*(?:(?:enhanced|improved|rewritten|detailed|new|video)\s+)?(?:prompt|description|caption)"
    r"\s*[:\-]\s*",
    re.IGNORECASE,
)
"""A leading "Prompt:"-style label the LLM may put before its answer."""
QUOTES = "\"'`“”‘’"
"""Quote characters stripped when they surround the whole answer."""


def clean_rewrite(raw: str) -> str:
    """The candidate prompt in raw LLM output: its first non-empty paragraph, without a
    "Prompt:" label, surrounding quotes or extra whitespace."""
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n|\n", raw.strip()) if p.strip()]
    text = paragraphs[0] if paragraphs else ""
    text = LABEL.sub("", text).strip()
    if len(text) >= 2 and text[0] in QUOTES and text[-1] in QUOTES:
        text = text[1:-1].strip()
    return " ".join(text.split())


def check_intent(user_prompt: str, rewrite: str) -> IntentCheck:
    """Compare the attributes `rewrite` states with those `user_prompt` states."""
    user = parse_prompt(user_prompt).attributes
    parsed = parse_prompt(rewrite)
    dropped: list[AttributeName] = []
    contradicted: list[AttributeName] = []
    for name in user.mentioned:
        value = parsed.attributes.get(name)
        if value is None and not _is_in_conflict(name, parsed.conflicts):
            dropped.append(name)
        elif value != user.get(name):
            contradicted.append(name)
    return IntentCheck(
        user, parsed.attributes, tuple(dropped), tuple(contradicted), tuple(parsed.conflicts)
    )


def _is_in_conflict(name: AttributeName, conflicts: tuple[str, ...]) -> bool:
    """Whether the parser left `name` open because the rewrite contradicts itself on it."""
    is_color = name in (AttributeName.COLOR, AttributeName.BACKGROUND)
    return any(
        conflict.startswith(f"{name.value}:") or (is_color and "cannot be on" in conflict)
        for conflict in conflicts
    )


def format_problem(text: str, limits: RewriteLimits) -> str | None:
    """What breaks the format limits in a cleaned candidate, or None."""
    if not text:
        return "rewrite is empty"
    words = len(text.split())
    if words < limits.min_words:
        return f"rewrite has {words} words, fewer than {limits.min_words}"
    if words > limits.max_words:
        return f"rewrite has {words} words, more than {limits.max_words}"
    if len(text) > limits.max_chars:
        return f"rewrite has {len(text)} characters, more than {limits.max_chars}"
    return None


def check_rewrite(user_prompt: str, raw: str, limits: RewriteLimits) -> RewriteVerdict:
    """Clean raw LLM output and judge it against `user_prompt` and `limits`."""
    text = clean_rewrite(raw)
    return RewriteVerdict(text, check_intent(user_prompt, text), format_problem(text, limits))

"""The chat the enhancer LLM sees: one system instruction and the user's prompt. Training (SFT)
and both backends build it here, so what the model learns is exactly what it is later asked."""

from __future__ import annotations

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

"""The chat the enhancer LLM sees: one system instruction and the user's prompt.

Built in the core package (`vpt.prompt_rewriting`) so that training, both backends here and the
serving service's OpenAI client all ask the model the same thing; re-exported under this name.
"""

from __future__ import annotations

from vpt.prompt_rewriting import MAX_PROMPT_CHARS, SYSTEM_PROMPT, chat_messages, validate_prompt

__all__ = ["MAX_PROMPT_CHARS", "SYSTEM_PROMPT", "chat_messages", "validate_prompt"]

"""`PromptEnhancer`: the one interface the rest of the system uses to rewrite a user's prompt.

A backend (embedded transformers + peft, or a vLLM OpenAI-compatible server) proposes a rewrite;
the enhancer cleans it, checks format limits and intent preservation (`vpt.prompt_rewriting`), and
asks again with sampling (`resample_attempts`, within the same time budget) when a rewrite is
rejected, and falls back to the user's own prompt when the backend fails, times out or no
rewrite is accepted.
It never raises for a backend problem: the caller always gets a prompt to generate from, and
`EnhancedPrompt` says what happened.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Literal, Protocol

from vpt.prompt_rewriting import RewriteLimits, RewriteVerdict, check_rewrite, validate_prompt


class BackendError(RuntimeError):
    """A backend could not produce a rewrite (unreachable, bad answer, model error)."""


class BackendTimeoutError(BackendError):
    """A backend did not answer within the time allowed."""


class RewriteBackend(Protocol):
    """Something that proposes rewrites: raw LLM text, one per prompt, in order."""

    name: str
    """Backend name reported in `EnhancedPrompt.backend` (e.g. `embedded`, `vllm`)."""

    @property
    def adapter(self) -> str | None:
        """Name of the LoRA adapter in use, or None for the base model."""
        ...

    def rewrite(
        self, prompts: Sequence[str], timeout_s: float, temperature: float | None = None
    ) -> list[str | BackendError]:
        """Raw rewrites of `prompts`, in order; a prompt whose request failed gets its error in
        place of the text. Raises `BackendTimeoutError`/`BackendError` when the whole call fails.
        `temperature` overrides the backend's decoding temperature for this call (None: its
        own settings)."""
        ...


@dataclass(frozen=True)
class GenerationSettings:
    """How the LLM decodes a rewrite."""

    max_new_tokens: int = 64
    """Most tokens generated per rewrite."""
    temperature: float = 0.0
    """Sampling temperature; 0 decodes greedily (deterministic)."""
    top_p: float = 1.0
    """Nucleus sampling mass when temperature > 0."""

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")


@dataclass(frozen=True)
class VLLMEndpoint:
    """Where the vLLM OpenAI-compatible server is and what to ask it for."""

    url: str = "http://127.0.0.1:8000"
    """Base URL of the server (without /v1)."""
    model: str = "smollm2"
    """Served model name (the `--served-model-name` of the base model)."""
    adapter: str | None = None
    """LoRA adapter name to use instead of the base model (loaded on the server)."""
    retries: int = 1
    """Extra attempts after a connection error (not after a timeout)."""


@dataclass(frozen=True)
class EnhancerConfig:
    """A prompt enhancer: which backend, which model, and the limits on its answers."""

    backend: Literal["embedded", "vllm"] = "embedded"
    """`embedded` runs the LLM in-process; `vllm` calls a vLLM OpenAI-compatible server."""
    base_model: str | None = None
    """Embedded: Hugging Face model folder; None uses the converted SmolLM2-135M-Instruct."""
    adapter: str | None = None
    """Embedded: LoRA adapter folder (from `vpt train enhancer`); None uses the base model."""
    vllm: VLLMEndpoint = field(default_factory=VLLMEndpoint)
    """vLLM: the server endpoint."""
    generation: GenerationSettings = field(default_factory=GenerationSettings)
    """Decoding settings."""
    limits: RewriteLimits = field(default_factory=RewriteLimits)
    """Format and length limits of an accepted rewrite."""
    timeout_s: float = 10.0
    """Wall-clock budget for one enhance call, resampling included; past it the user's prompt
    is used."""
    resample_attempts: int = 3
    """Further rewrites asked for, one at a time, when a rewrite is rejected (dropped or
    contradicted an attribute, broke a format limit), sampled at `resample_temperature`; the
    first accepted one is used. 0 = one rewrite only. A failed or timed-out backend call is not
    retried here (see `VLLMEndpoint.retries` for connection errors)."""
    resample_temperature: float = 0.7
    """Sampling temperature of those further attempts (the first rewrite uses `generation`)."""

    def __post_init__(self) -> None:
        if self.timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {self.timeout_s}")
        if self.resample_attempts < 0:
            raise ValueError(f"resample_attempts must be >= 0, got {self.resample_attempts}")
        if self.resample_temperature <= 0:
            raise ValueError(
                f"resample_temperature must be > 0 (resampling must sample), got "
                f"{self.resample_temperature}"
            )


@dataclass(frozen=True)
class EnhancedPrompt:
    """The prompt to generate from, and how it was obtained."""

    user_prompt: str
    """What the user asked for."""
    prompt: str
    """What to send to the generator: the accepted rewrite, or the user's prompt."""
    rewrite: str | None
    """The cleaned candidate the backend proposed (None when the backend failed)."""
    backend: str
    """The backend that was asked."""
    adapter: str | None
    """The LoRA adapter used, or None for the base model."""
    latency_s: float
    """Wall time of the enhance call."""
    fell_back: bool
    """Whether the user's prompt is used because no acceptable rewrite came back."""
    reason: str | None = None
    """Why it fell back (timeout, backend error, rejected rewrite), or None."""
    attempts: int = 1
    """Rewrites the backend was asked for (1 + resampled attempts after rejections)."""


class PromptEnhancer:
    """Rewrites prompts with a backend; always returns a usable prompt."""

    def __init__(self, backend: RewriteBackend, config: EnhancerConfig | None = None) -> None:
        self.backend = backend
        self.config = config if config is not None else EnhancerConfig()

    def enhance(self, prompt: str) -> EnhancedPrompt:
        """The enhanced prompt for `prompt` (ValueError if `prompt` itself is unusable)."""
        return self.enhance_batch([prompt])[0]

    def enhance_batch(self, prompts: Sequence[str]) -> list[EnhancedPrompt]:
        """Enhance several prompts in one backend call (they share the time budget)."""
        if isinstance(prompts, str):
            raise ValueError("enhance_batch takes a list of prompts, not one string")
        if not prompts:
            raise ValueError("enhance_batch needs at least one prompt")
        users = [validate_prompt(p) for p in prompts]
        started = time.monotonic()
        outcomes = self._ask(users, self.config.timeout_s, None)
        attempts = [1] * len(users)
        verdicts: list[RewriteVerdict | BackendError] = [
            outcome if isinstance(outcome, BackendError) else self._check(user, outcome)
            for user, outcome in zip(users, outcomes, strict=True)
        ]
        for _ in range(self.config.resample_attempts):
            pending = [
                i
                for i, verdict in enumerate(verdicts)
                if isinstance(verdict, RewriteVerdict) and not verdict.is_accepted
            ]
            remaining = self.config.timeout_s - (time.monotonic() - started)
            if not pending or remaining <= 0:
                break
            again = self._ask(
                [users[i] for i in pending], remaining, self.config.resample_temperature
            )
            for i, outcome in zip(pending, again, strict=True):
                if isinstance(outcome, BackendError):
                    continue  # keep the rejected rewrite and its reason
                attempts[i] += 1
                verdicts[i] = self._check(users[i], outcome)
        latency = time.monotonic() - started
        results = []
        for user, verdict, tries in zip(users, verdicts, attempts, strict=True):
            if isinstance(verdict, BackendError):
                results.append(self._fallback(user, None, latency, describe_failure(verdict)))
            elif not verdict.is_accepted:
                results.append(
                    replace(
                        self._fallback(user, verdict.text, latency, verdict.reason),
                        attempts=tries,
                    )
                )
            else:
                results.append(
                    EnhancedPrompt(
                        user_prompt=user,
                        prompt=verdict.text,
                        rewrite=verdict.text,
                        backend=self.backend.name,
                        adapter=self.backend.adapter,
                        latency_s=latency,
                        fell_back=False,
                        attempts=tries,
                    )
                )
        return results

    def _ask(
        self, users: list[str], timeout_s: float, temperature: float | None
    ) -> list[str | BackendError]:
        """One backend call; a failure of the whole call becomes every prompt's error."""
        try:
            outcomes = self.backend.rewrite(users, timeout_s, temperature)
            if len(outcomes) != len(users):
                raise BackendError(f"backend returned {len(outcomes)} rewrites for {len(users)}")
        except BackendError as error:
            return [error] * len(users)
        return outcomes

    def _check(self, user: str, rewrite: str) -> RewriteVerdict:
        return check_rewrite(user, rewrite, self.config.limits)

    def _fallback(
        self, user: str, rewrite: str | None, latency: float, reason: str | None
    ) -> EnhancedPrompt:
        return EnhancedPrompt(
            user, user, rewrite, self.backend.name, self.backend.adapter, latency, True, reason
        )


def describe_failure(error: BackendError) -> str:
    """The fallback reason for a backend failure."""
    kind = "timeout" if isinstance(error, BackendTimeoutError) else "backend error"
    return f"{kind}: {error}"

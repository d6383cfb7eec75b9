"""The prompt-enhancement hook in front of the generator, and its enhancer clients.

`PromptEnhancer` is what an enhancer client implements: the user's prompt in, the raw rewrite
out. `EnhancementHook.enhance` calls it under a timeout and decides what the generator sees:

- `enhanced`: the cleaned rewrite passed the format limits and the intent check
  (`vpt.prompt_rewriting.check_rewrite`: every attribute the user stated is kept, nothing
  contradicts), and differs from the user's prompt; a rejected rewrite is asked for again,
  sampled, up to `resample_attempts` times within the same time budget;
- the user's own prompt otherwise, labelled `unchanged`, `rejected` (the rewrite dropped or
  contradicted an attribute, or broke the length/format limits), `timeout`, `error`, `empty`
  or `disabled`.

So a slow, broken or unfaithful enhancer never fails a generation or changes what was asked for.

Clients: `IdentityEnhancer` (wiring tests) and `OpenAIChatEnhancer`, which asks an
OpenAI-compatible chat-completions server (vLLM serving the enhancer LLM, the base model or a
versioned LoRA adapter by name) with the same chat the enhancer was trained on
(`vpt.prompt_rewriting.chat_messages`), over an async HTTP client (httpx).
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass, replace
from typing import Any, Literal, Protocol

import httpx

from serving.config import EnhancementConfig
from serving.protos import types_pb
from vpt.config import ConfigError
from vpt.prompt_rewriting import RewriteLimits, chat_messages, check_rewrite

log = logging.getLogger(__name__)

EnhancementResult = Literal[
    "enhanced", "unchanged", "rejected", "timeout", "error", "empty", "disabled"
]
ENHANCEMENT_RESULTS: tuple[EnhancementResult, ...] = (
    "enhanced",
    "unchanged",
    "rejected",
    "timeout",
    "error",
    "empty",
    "disabled",
)
"""Every result label (the values of the `vpt_prompt_enhancements_total{result}` metric)."""


def result_message(result: EnhancementResult) -> int:
    """The `vpt.serving.v1.PromptEnhancementResult` value of `result`."""
    return types_pb.PromptEnhancementResult.Value(f"PROMPT_ENHANCEMENT_RESULT_{result.upper()}")


class PromptEnhancer(Protocol):
    """Rewrites a user prompt into the model's caption register (raw text; the hook cleans and
    checks it)."""

    async def enhance(self, prompt: str, temperature: float | None = None) -> str:
        """The raw rewrite of `prompt`; `temperature` overrides the client's decoding
        temperature (the hook samples again at a set temperature after a rejection)."""
        ...


class EnhancerError(RuntimeError):
    """An enhancer client could not get a rewrite (unreachable server, bad status or answer)."""


class IdentityEnhancer:
    """A stand-in enhancer that returns the prompt unchanged (wiring tests, local use)."""

    async def enhance(self, prompt: str, temperature: float | None = None) -> str:
        return prompt

    async def close(self) -> None:
        """Nothing to release."""


@dataclass(frozen=True)
class OpenAIEndpoint:
    """Where an OpenAI-compatible chat-completions server is, and how to ask it."""

    base_url: str
    """API root including the version, e.g. `http://127.0.0.1:8000/v1` (vLLM's OpenAI server);
    requests go to `{base_url}/chat/completions`."""
    model: str
    """`model` of each request: the served base model name or a loaded LoRA adapter's
    versioned name (`enhancer-v3`)."""
    max_tokens: int = 64
    """Most tokens generated per rewrite."""
    temperature: float = 0.0
    """Sampling temperature; 0 decodes greedily, so a prompt always gets the same rewrite."""
    timeout_seconds: float = 2.0
    """HTTP timeout of one request (connect, read, write); past it the result is `timeout`."""
    api_key: str | None = None
    """Sent as `Authorization: Bearer <key>` when set (vLLM's `--api-key`)."""

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {self.base_url!r}")
        if not self.model:
            raise ValueError("model must name the served model or LoRA adapter")
        if self.max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {self.max_tokens}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if self.timeout_seconds <= 0:
            raise ValueError(f"timeout_seconds must be > 0, got {self.timeout_seconds}")


class OpenAIChatEnhancer:
    """Asks an OpenAI-compatible server (vLLM) for a rewrite; one request per prompt.

    The httpx client is made on first use, inside the event loop that serves requests, and
    shared by concurrent generations (connection pooling). Errors become `TimeoutError`
    (request timeout) or `EnhancerError` (anything else); the hook turns both into fallbacks.
    """

    def __init__(self, endpoint: OpenAIEndpoint) -> None:
        self.endpoint = endpoint
        self.url = endpoint.base_url.rstrip("/") + "/chat/completions"
        self._client: httpx.AsyncClient | None = None

    def _headers(self) -> dict[str, str]:
        if self.endpoint.api_key:
            return {"Authorization": f"Bearer {self.endpoint.api_key}"}
        return {}

    def request_body(self, prompt: str, temperature: float | None = None) -> dict[str, Any]:
        """The chat-completions request asking for a rewrite of `prompt`."""
        return {
            "model": self.endpoint.model,
            "messages": chat_messages(prompt),
            "max_tokens": self.endpoint.max_tokens,
            "temperature": self.endpoint.temperature if temperature is None else temperature,
        }

    async def enhance(self, prompt: str, temperature: float | None = None) -> str:
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=self.endpoint.timeout_seconds, headers=self._headers()
            )
        try:
            response = await self._client.post(
                self.url, json=self.request_body(prompt, temperature)
            )
        except httpx.TimeoutException as error:
            raise TimeoutError(
                f"{self.url} did not answer within {self.endpoint.timeout_seconds} s"
            ) from error
        except httpx.HTTPError as error:
            raise EnhancerError(f"{self.url} unreachable: {error!r}") from error
        if response.status_code != 200:
            raise EnhancerError(
                f"{self.url} answered {response.status_code}: {response.text[:300]}"
            )
        try:
            content = response.json()["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise EnhancerError(
                f"{self.url} answer has no choices[0].message.content: {response.text[:300]}"
            ) from None
        if not isinstance(content, str):
            raise EnhancerError(f"{self.url} answer content is {type(content).__name__}, not text")
        return content

    async def check(self) -> str | None:
        """What is wrong with the endpoint (unreachable, `model` not served), or None. For the
        start-up log: the service starts anyway and falls back while the problem lasts."""
        url = self.endpoint.base_url.rstrip("/") + "/models"
        try:
            async with httpx.AsyncClient(
                timeout=self.endpoint.timeout_seconds, headers=self._headers()
            ) as client:
                response = await client.get(url)
        except httpx.HTTPError as error:
            return f"{url} unreachable: {error!r}"
        if response.status_code != 200:
            return f"{url} answered {response.status_code}: {response.text[:200]}"
        try:
            served = [str(entry["id"]) for entry in response.json()["data"]]
        except (ValueError, KeyError, TypeError):
            return f"{url} answer has no data[].id: {response.text[:200]}"
        if self.endpoint.model not in served:
            return (
                f"model {self.endpoint.model!r} is not served at {url} (it serves "
                f"{', '.join(served) or 'nothing'}); set enhancement.openai.model"
            )
        return None

    async def close(self) -> None:
        """Close the HTTP connections."""
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()


@dataclass(frozen=True)
class EnhancedPrompt:
    """What the generator will see and how it came about."""

    prompt: str
    """The effective prompt."""
    result: EnhancementResult
    """`enhanced` only when an accepted rewrite differs from the user's prompt."""
    seconds: float
    """Time spent in the hook."""
    reason: str | None = None
    """Why the user's prompt is used (rejection reason, error), or None."""
    attempts: int = 1
    """Rewrites asked of the enhancer (1 + resampled attempts after rejections)."""


class EnhancementHook:
    """Calls an optional enhancer with a timeout; never raises for enhancer failures."""

    def __init__(
        self,
        enhancer: PromptEnhancer | None,
        timeout_seconds: float,
        limits: RewriteLimits | None = None,
        resample_attempts: int = EnhancementConfig.resample_attempts,
        resample_temperature: float = EnhancementConfig.resample_temperature,
    ) -> None:
        if timeout_seconds <= 0:
            raise ValueError(f"timeout_seconds must be > 0, got {timeout_seconds}")
        if resample_attempts < 0:
            raise ValueError(f"resample_attempts must be >= 0, got {resample_attempts}")
        if resample_temperature <= 0:
            raise ValueError(f"resample_temperature must be > 0, got {resample_temperature}")
        self.enhancer = enhancer
        self.timeout_seconds = timeout_seconds
        self.limits = limits if limits is not None else RewriteLimits()
        self.resample_attempts = resample_attempts
        self.resample_temperature = resample_temperature

    async def enhance(self, prompt: str, is_requested: bool) -> EnhancedPrompt:
        loop = asyncio.get_running_loop()
        started = loop.time()
        if not is_requested or self.enhancer is None:
            return EnhancedPrompt(prompt, "disabled", 0.0)
        try:
            answer = await asyncio.wait_for(self.enhancer.enhance(prompt), self.timeout_seconds)
        except TimeoutError as error:
            reason = str(error) or f"no answer within {self.timeout_seconds} s"
            return self._fall_back(prompt, "timeout", started, reason)
        except Exception as error:  # any enhancer failure falls back to the user's prompt
            return self._fall_back(prompt, "error", started, f"{type(error).__name__}: {error}")
        result = self._judge(prompt, answer, started)
        attempts = 1
        while result.result == "rejected" and attempts <= self.resample_attempts:
            remaining = self.timeout_seconds - (loop.time() - started)
            if remaining <= 0:
                break
            try:
                answer = await asyncio.wait_for(
                    self.enhancer.enhance(prompt, self.resample_temperature), remaining
                )
            except Exception as error:  # the rejection stands; the user's prompt is used
                log.info("enhancer resample failed: %s: %s", type(error).__name__, error)
                break
            attempts += 1
            result = self._judge(prompt, answer, started)
        return replace(result, attempts=attempts)

    def _judge(self, prompt: str, answer: object, started: float) -> EnhancedPrompt:
        """What one answer of the enhancer makes the generator see."""
        seconds = asyncio.get_running_loop().time() - started
        if not isinstance(answer, str) or not answer.strip():
            return EnhancedPrompt(prompt, "empty", seconds, "the enhancer answered nothing")
        if answer.strip() == prompt.strip():
            return EnhancedPrompt(prompt, "unchanged", seconds)
        verdict = check_rewrite(prompt, answer, self.limits)
        if not verdict.is_accepted:
            log.info("enhancer rewrite rejected (%s): %r", verdict.reason, verdict.text)
            return EnhancedPrompt(prompt, "rejected", seconds, verdict.reason)
        if verdict.text == prompt.strip():
            return EnhancedPrompt(prompt, "unchanged", seconds)
        return EnhancedPrompt(verdict.text, "enhanced", seconds)

    def _fall_back(
        self, prompt: str, result: EnhancementResult, started: float, reason: str
    ) -> EnhancedPrompt:
        log.warning("prompt enhancer %s, using the user's prompt: %s", result, reason)
        seconds = asyncio.get_running_loop().time() - started
        return EnhancedPrompt(prompt, result, seconds, reason)

    async def check(self) -> str | None:
        """What is wrong with the enhancer's endpoint, or None (also when it has no check)."""
        check = getattr(self.enhancer, "check", None)
        return None if check is None else await check()

    async def close(self) -> None:
        """Release the enhancer client's connections, if it holds any."""
        close = getattr(self.enhancer, "close", None)
        if close is not None:
            await close()


def build_enhancer(config: EnhancementConfig) -> PromptEnhancer | None:
    """The enhancer client `config.backend` names (None for `none`); endpoint and API key are
    read from the environment variables the config names. ConfigError for a bad section."""
    if config.backend == "none":
        return None
    if config.backend == "identity":
        return IdentityEnhancer()
    openai = config.openai
    key_env = openai.api_key_env
    api_key = os.environ.get(key_env, "").strip() if key_env else ""
    try:
        endpoint = OpenAIEndpoint(
            base_url=openai.resolved_base_url(),
            model=openai.model,
            max_tokens=openai.max_tokens,
            temperature=openai.temperature,
            timeout_seconds=openai.timeout_seconds,
            api_key=api_key or None,
        )
    except ValueError as error:
        raise ConfigError(f"enhancement.openai: {error}") from None
    return OpenAIChatEnhancer(endpoint)

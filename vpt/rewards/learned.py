"""`Reward` adapters for the learned reward models: in-process torch and onnxruntime.

Input contract (checked, with an error naming what is wrong): uint8 videos `(B, F, H, W, 3)`
with the geometry the model was trained on (`frames x height x width`, 16 x 32 x 32 for the
shipped models) and one prompt per video. Scores are float32 `(B,)`:

- quality models: exp(-sum of predicted normalised defect levels >= 0), in (0, 1], higher =
  cleaner;
- text alignment: the model's P(prompt matches video), in (0, 1).

Text alignment reads each prompt through MiniLM, run in torch in-process by `PromptEmbedder`
for every backend, with a cache (a GRPO group repeats one prompt many times). A model with
`TextPooling.MEAN` takes the sentence embedding (last token states mean-pooled over the
prompt's real tokens, L2-normalised: the sentence-embedding recipe of all-MiniLM-L6-v2); one
with `TextPooling.ATTENTION` takes the last token states themselves, zero-padded to the model's
`text_tokens`, and a mask of the real tokens (`prompt_inputs` builds either, keyed by the
exported graph's input names).

Shape legend: B batch, F frames, H/W height/width, L tokens, T text embedding width.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vpt.models.text_encoder import TextEncoder, TextEncoderConfig
from vpt.rewards.base import RewardInputError, check_reward_inputs
from vpt.rewards.model_files import LoadedRewardModel
from vpt.rewards.networks import ClipEncoderConfig, RewardModelConfig, RewardModelKind, TextPooling
from vpt.rewards.onnx_export import (
    SCORES_OUTPUT,
    TEXT_INPUT,
    TEXT_MASK_INPUT,
    TEXT_TOKENS_INPUT,
    VIDEO_INPUT,
)

SCORE_BATCH = 64
"""Videos per forward pass when scoring a large batch."""
PROMPT_CACHE_SIZE = 4096
"""Prompts kept by a `PromptEmbedder` (each with its real tokens' states: about 1.5 kB per token,
so at most about 100 MB for world captions)."""


def check_video_geometry(name: str, videos_BFHWC: np.ndarray, encoder: ClipEncoderConfig) -> None:
    """Raise `RewardInputError` unless the videos have the geometry the model was trained on."""
    expected = (encoder.frames, encoder.height, encoder.width)
    got = tuple(int(d) for d in videos_BFHWC.shape[1:4])
    if got != expected:
        raise RewardInputError(
            f"reward {name!r} scores videos of {expected[0]} frames of {expected[1]}x"
            f"{expected[2]} pixels (frames, height, width = {expected}); got {got}. Generate at "
            "that size, or train reward models for this size (`vpt train rewards` with "
            "data.world set to it)"
        )


@dataclass(frozen=True)
class PromptTokens:
    """MiniLM's last token states of some prompts, zero-padded, and the mask of real tokens."""

    states: np.ndarray
    """float32 `(B, L, T)`, zero past each prompt's tokens."""
    mask: np.ndarray
    """float32 `(B, L)`: 1 for a real token, 0 for padding."""


@dataclass(frozen=True)
class _EncodedPrompt:
    sentence: np.ndarray
    """L2-normalised mean of the token states."""
    tokens: np.ndarray
    """The token states of the real tokens only."""


class PromptEmbedder:
    """Prompts -> MiniLM sentence embeddings `(B, T)` or token states + mask, cached."""

    def __init__(self, encoder: TextEncoder, cache_size: int = PROMPT_CACHE_SIZE) -> None:
        self.encoder = encoder
        self.dim = encoder.dim
        self.max_length = encoder.config.max_length
        self._cache: OrderedDict[str, _EncodedPrompt] = OrderedDict()
        self._cache_size = cache_size

    def embed(self, prompts: Sequence[str]) -> np.ndarray:
        """float32 `(B, T)` sentence embeddings of `prompts`."""
        rows = [encoded.sentence for encoded in self._encoded(prompts)]
        return np.stack(rows) if rows else np.zeros((0, self.dim), dtype=np.float32)

    def embed_tokens(self, prompts: Sequence[str], length: int | None = None) -> PromptTokens:
        """Token states of `prompts` padded to `length` tokens (default: the encoder's
        `max_length`, past which prompts are truncated)."""
        length = self.max_length if length is None else length
        if length < self.max_length:
            raise ValueError(
                f"cannot pad prompts to {length} tokens: the text encoder keeps up to "
                f"{self.max_length} (text_encoder.max_length)"
            )
        states = np.zeros((len(prompts), length, self.dim), dtype=np.float32)
        mask = np.zeros((len(prompts), length), dtype=np.float32)
        for row, encoded in enumerate(self._encoded(prompts)):
            count = len(encoded.tokens)
            states[row, :count] = encoded.tokens
            mask[row, :count] = 1.0
        return PromptTokens(states, mask)

    @torch.no_grad()
    def _encoded(self, prompts: Sequence[str]) -> list[_EncodedPrompt]:
        missing = list(dict.fromkeys(p for p in prompts if p not in self._cache))
        if missing:
            tokens = self.encoder.tokenizer(
                missing,
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            ).to(self.encoder.device)
            states_BLT = self.encoder.model(
                input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"]
            ).last_hidden_state
            mask_BL1 = tokens["attention_mask"].unsqueeze(-1).to(states_BLT.dtype)
            pooled_BT = (states_BLT * mask_BL1).sum(1) / mask_BL1.sum(1).clamp_min(1.0)
            unit_BT = torch.nn.functional.normalize(pooled_BT, dim=-1).cpu().numpy()
            states = states_BLT.cpu().numpy().astype(np.float32)
            lengths = tokens["attention_mask"].sum(dim=1).tolist()
            for row, prompt in enumerate(missing):
                self._cache[prompt] = _EncodedPrompt(
                    unit_BT[row].astype(np.float32), states[row, : int(lengths[row])].copy()
                )
        encoded = []
        for prompt in prompts:
            self._cache.move_to_end(prompt)
            encoded.append(self._cache[prompt])
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return encoded


def prompt_inputs(
    embedder: PromptEmbedder, pooling: TextPooling, prompts: Sequence[str], tokens: int
) -> dict[str, np.ndarray]:
    """The text inputs of a text-alignment model, by exported input name, in call order: the
    sentence embedding (mean pooling), or `tokens` token states and their mask (attention)."""
    if pooling is TextPooling.MEAN:
        return {TEXT_INPUT: embedder.embed(prompts)}
    encoded = embedder.embed_tokens(prompts, tokens)
    return {TEXT_TOKENS_INPUT: encoded.states, TEXT_MASK_INPUT: encoded.mask}


_SHARED_EMBEDDERS: dict[TextEncoderConfig, PromptEmbedder] = {}


def shared_prompt_embedder(config: TextEncoderConfig | None = None) -> PromptEmbedder:
    """One `PromptEmbedder` per text-encoder config per process (MiniLM loads once)."""
    key = config or TextEncoderConfig()
    if key not in _SHARED_EMBEDDERS:
        _SHARED_EMBEDDERS[key] = PromptEmbedder(TextEncoder(key))
    return _SHARED_EMBEDDERS[key]


class _LearnedReward:
    """Shared checks and batching of the torch and onnxruntime adapters."""

    def __init__(
        self, name: str, config: RewardModelConfig, embedder: PromptEmbedder | None
    ) -> None:
        self.name = name
        self.config = config
        self.uses_text = config.kind is RewardModelKind.TEXT_ALIGNMENT
        if self.uses_text:
            embedder = embedder or shared_prompt_embedder()
            if embedder.dim != config.text_dim:
                raise ValueError(
                    f"reward {name!r} expects {config.text_dim}-wide prompt embeddings, the text "
                    f"encoder gives {embedder.dim}"
                )
            attention = config.text_pooling is TextPooling.ATTENTION
            if attention and embedder.max_length > config.text_tokens:
                raise ValueError(
                    f"reward {name!r} reads up to {config.text_tokens} prompt tokens, the text "
                    f"encoder keeps {embedder.max_length}; set its max_length to at most that"
                )
        self.embedder = embedder if self.uses_text else None

    def score(self, videos_BFHWC: np.ndarray, prompts: Sequence[str]) -> np.ndarray:
        """float32 `(B,)` scores; see the module docstring for the input contract."""
        check_reward_inputs(videos_BFHWC, prompts)
        check_video_geometry(self.name, videos_BFHWC, self.config.encoder)
        if len(prompts) == 0:
            return np.zeros(0, dtype=np.float32)
        text: dict[str, np.ndarray] = {}
        if self.embedder is not None:
            pooling, tokens = self.config.text_pooling, self.config.text_tokens
            text = prompt_inputs(self.embedder, pooling, prompts, tokens)
        scores = []
        for start in range(0, len(prompts), SCORE_BATCH):
            chunk = slice(start, start + SCORE_BATCH)
            feeds = {VIDEO_INPUT: np.ascontiguousarray(videos_BFHWC[chunk])}
            feeds.update({name: np.ascontiguousarray(v[chunk]) for name, v in text.items()})
            scores.append(self._run(feeds))
        return np.concatenate(scores).astype(np.float32)

    def _run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        """Scores of one chunk; `feeds` holds the exported graph's inputs, in call order."""
        raise NotImplementedError


class TorchReward(_LearnedReward):
    """A learned reward run by its torch module, in-process."""

    def __init__(self, loaded: LoadedRewardModel, embedder: PromptEmbedder | None = None) -> None:
        super().__init__(loaded.name, loaded.config, embedder)
        self.model = loaded.model.eval()

    @torch.no_grad()
    def _run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        scores: np.ndarray = self.model(*(torch.from_numpy(v) for v in feeds.values())).numpy()
        return scores


class OnnxReward(_LearnedReward):
    """A learned reward run from its ONNX graph by onnxruntime, in-process (the default)."""

    def __init__(
        self,
        name: str,
        onnx_path: Path,
        config: RewardModelConfig,
        embedder: PromptEmbedder | None = None,
        threads: int | None = None,
    ) -> None:
        import onnxruntime

        super().__init__(name, config, embedder)
        if not onnx_path.is_file():
            raise FileNotFoundError(f"reward {name!r}: no ONNX graph at {onnx_path}")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or int(os.environ.get("VPT_THREADS", "1"))
        options.inter_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(
            str(onnx_path), options, providers=["CPUExecutionProvider"]
        )

    @classmethod
    def from_loaded(
        cls, loaded: LoadedRewardModel, embedder: PromptEmbedder | None = None
    ) -> OnnxReward:
        """The ONNX graph stored beside a loaded (verified) reward model."""
        return cls(loaded.name, loaded.onnx_path, loaded.config, embedder)

    def _run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        (scores,) = self.session.run([SCORES_OUTPUT], feeds)
        return np.asarray(scores)

"""`Reward` adapters for the learned reward models: in-process torch and onnxruntime.

Input contract (checked, with an error naming what is wrong): uint8 videos `(B, F, H, W, 3)`
with the geometry the model was trained on (`frames x height x width`, 16 x 32 x 32 for the
shipped models) and one prompt per video. Scores are float32 `(B,)`:

- quality models: exp(-sum of predicted normalised defect levels >= 0), in (0, 1], higher =
  cleaner;
- text alignment: the model's P(prompt matches video), in (0, 1).

Text alignment needs each prompt's sentence embedding: `PromptEmbedder` mean-pools MiniLM's
last token states over the prompt's real tokens and L2-normalises them (the sentence-embedding
recipe of all-MiniLM-L6-v2). It runs in torch in-process for every backend and caches prompts
(a GRPO group repeats one prompt many times).

Shape legend: B batch, F frames, H/W height/width, T text embedding width.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from vpt.models.text_encoder import TextEncoder, TextEncoderConfig
from vpt.rewards.base import RewardInputError, check_reward_inputs
from vpt.rewards.model_files import LoadedRewardModel
from vpt.rewards.networks import ClipEncoderConfig, RewardModelConfig, RewardModelKind
from vpt.rewards.onnx_export import SCORES_OUTPUT, TEXT_INPUT, VIDEO_INPUT

SCORE_BATCH = 64
"""Videos per forward pass when scoring a large batch."""
PROMPT_CACHE_SIZE = 4096
"""Prompt embeddings kept by a `PromptEmbedder`."""


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


class PromptEmbedder:
    """Prompts -> L2-normalised mean-pooled MiniLM sentence embeddings `(B, T)`, cached."""

    def __init__(self, encoder: TextEncoder, cache_size: int = PROMPT_CACHE_SIZE) -> None:
        self.encoder = encoder
        self.dim = encoder.dim
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = cache_size

    @torch.no_grad()
    def embed(self, prompts: Sequence[str]) -> np.ndarray:
        """float32 `(B, T)` sentence embeddings of `prompts`."""
        missing = list(dict.fromkeys(p for p in prompts if p not in self._cache))
        if missing:
            tokens = self.encoder.tokenizer(
                missing,
                padding=True,
                truncation=True,
                max_length=self.encoder.config.max_length,
                return_tensors="pt",
            ).to(self.encoder.device)
            states_BLT = self.encoder.model(
                input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"]
            ).last_hidden_state
            mask_BL1 = tokens["attention_mask"].unsqueeze(-1).to(states_BLT.dtype)
            pooled_BT = (states_BLT * mask_BL1).sum(1) / mask_BL1.sum(1).clamp_min(1.0)
            unit_BT = torch.nn.functional.normalize(pooled_BT, dim=-1).cpu().numpy()
            for prompt, row in zip(missing, unit_BT.astype(np.float32), strict=True):
                self._cache[prompt] = row
        rows = []
        for prompt in prompts:
            self._cache.move_to_end(prompt)
            rows.append(self._cache[prompt])
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return np.stack(rows) if rows else np.zeros((0, self.dim), dtype=np.float32)


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
        self.embedder = embedder if self.uses_text else None

    def score(self, videos_BFHWC: np.ndarray, prompts: Sequence[str]) -> np.ndarray:
        """float32 `(B,)` scores; see the module docstring for the input contract."""
        check_reward_inputs(videos_BFHWC, prompts)
        check_video_geometry(self.name, videos_BFHWC, self.config.encoder)
        if len(prompts) == 0:
            return np.zeros(0, dtype=np.float32)
        text_BT = self.embedder.embed(prompts) if self.embedder is not None else None
        scores = []
        for start in range(0, len(prompts), SCORE_BATCH):
            chunk = slice(start, start + SCORE_BATCH)
            video = np.ascontiguousarray(videos_BFHWC[chunk])
            scores.append(self._run(video, None if text_BT is None else text_BT[chunk]))
        return np.concatenate(scores).astype(np.float32)

    def _run(self, video_BFHWC: np.ndarray, text_BT: np.ndarray | None) -> np.ndarray:
        raise NotImplementedError


class TorchReward(_LearnedReward):
    """A learned reward run by its torch module, in-process."""

    def __init__(self, loaded: LoadedRewardModel, embedder: PromptEmbedder | None = None) -> None:
        super().__init__(loaded.name, loaded.config, embedder)
        self.model = loaded.model.eval()

    @torch.no_grad()
    def _run(self, video_BFHWC: np.ndarray, text_BT: np.ndarray | None) -> np.ndarray:
        arguments = [torch.from_numpy(video_BFHWC)]
        if text_BT is not None:
            arguments.append(torch.from_numpy(text_BT))
        scores: np.ndarray = self.model(*arguments).numpy()
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

    def _run(self, video_BFHWC: np.ndarray, text_BT: np.ndarray | None) -> np.ndarray:
        feeds = {VIDEO_INPUT: video_BFHWC}
        if text_BT is not None:
            feeds[TEXT_INPUT] = np.ascontiguousarray(text_BT, dtype=np.float32)
        (scores,) = self.session.run([SCORES_OUTPUT], feeds)
        return np.asarray(scores)

"""The Triton backend of the learned rewards: a `Reward` that calls Triton over gRPC.

`TritonReward` sends the same tensors the in-process ONNX backend feeds onnxruntime (raw uint8
videos, and for text alignment what the model's inputs name, computed here in-process by MiniLM:
the sentence embeddings, or the token states and their mask) to the model of the same name on a
Triton Inference Server (`vpt export rewards` writes its model repository), so both backends
give the same scores.

Every call has a deadline (`timeout_s`). A call that times out or finds the server unavailable
(gRPC DEADLINE_EXCEEDED, UNAVAILABLE, RESOURCE_EXHAUSTED) is retried up to `max_retries` times,
pausing `retry_backoff_s`, doubled each time; then `TritonRewardError` says which server,
which model, how many attempts and what the last error was. Other errors (a bad request, an
unknown model) are not retried.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TypeVar

import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from vpt.rewards import check_reward_inputs
from vpt.rewards.learned import (
    PromptEmbedder,
    check_video_geometry,
    prompt_inputs,
    shared_prompt_embedder,
)
from vpt.rewards.networks import ClipEncoderConfig, TextPooling
from vpt.rewards.onnx_export import (
    SCORES_OUTPUT,
    TEXT_INPUT,
    TEXT_MASK_INPUT,
    TEXT_TOKENS_INPUT,
    VIDEO_INPUT,
)
from vpt.rewards.reward_set import (
    RewardName,
    RewardSet,
    RewardSetConfig,
    TritonEndpointConfig,
)
from vpt.rewards.structural import StructuralReward

RETRYABLE = frozenset(
    {"StatusCode.UNAVAILABLE", "StatusCode.DEADLINE_EXCEEDED", "StatusCode.RESOURCE_EXHAUSTED"}
)
"""gRPC statuses worth another attempt: the server is slow, restarting or overloaded."""
SCORE_BATCH = 64
"""Videos per request (the exported configs allow up to 64)."""

T = TypeVar("T")


class TritonRewardError(RuntimeError):
    """The Triton server could not score a batch; the message says which server and why."""


class TritonReward:
    """`Reward` scored by model `name` of a Triton server."""

    def __init__(
        self,
        name: str,
        endpoint: TritonEndpointConfig,
        embedder: PromptEmbedder | None = None,
    ) -> None:
        """Connects and reads the model's metadata (inputs, video geometry) from the server."""
        self.name = name
        self.endpoint = endpoint
        self.client = grpcclient.InferenceServerClient(url=endpoint.url)
        metadata = self._call(
            "read the model metadata",
            lambda: self.client.get_model_metadata(name, client_timeout=endpoint.timeout_s),
        )
        inputs = {tensor.name: list(tensor.shape) for tensor in metadata.inputs}
        if VIDEO_INPUT not in inputs or len(inputs[VIDEO_INPUT]) != 5:
            raise TritonRewardError(
                f"model {name!r} on {endpoint.url} has no {VIDEO_INPUT!r} input shaped "
                f"(batch, frames, height, width, 3); is it a vpt reward model?"
            )
        frames, height, width = inputs[VIDEO_INPUT][1:4]
        self.geometry = ClipEncoderConfig(frames=frames, height=height, width=width)
        self.pooling: TextPooling | None = None
        self.text_tokens = 0
        if TEXT_INPUT in inputs:
            self.pooling = TextPooling.MEAN
        elif TEXT_TOKENS_INPUT in inputs and TEXT_MASK_INPUT in inputs:
            self.pooling = TextPooling.ATTENTION
            self.text_tokens = int(inputs[TEXT_TOKENS_INPUT][1])
        self.uses_text = self.pooling is not None
        self.embedder = (embedder or shared_prompt_embedder()) if self.uses_text else None
        wire_types = {tensor.name: tensor.datatype for tensor in metadata.inputs}
        self.wire_types = {name: wire_types[name] for name in inputs}

    def score(self, videos_BFHWC: np.ndarray, prompts: Sequence[str]) -> np.ndarray:
        """float32 `(B,)` scores from the server; same contract as the in-process backends."""
        check_reward_inputs(videos_BFHWC, prompts)
        check_video_geometry(self.name, videos_BFHWC, self.geometry)
        if len(prompts) == 0:
            return np.zeros(0, dtype=np.float32)
        text: dict[str, np.ndarray] = {}
        if self.embedder is not None and self.pooling is not None:
            text = prompt_inputs(self.embedder, self.pooling, prompts, self.text_tokens)
        scores = []
        for start in range(0, len(prompts), SCORE_BATCH):
            chunk = slice(start, start + SCORE_BATCH)
            video = np.ascontiguousarray(videos_BFHWC[chunk])
            feeds = {VIDEO_INPUT: video, **{name: value[chunk] for name, value in text.items()}}
            inputs = []
            for name, value in feeds.items():
                tensor = grpcclient.InferInput(name, list(value.shape), self.wire_types[name])
                tensor.set_data_from_numpy(np.ascontiguousarray(value))
                inputs.append(tensor)
            result = self._call(f"score {len(video)} videos", self._infer_call(inputs))
            chunk_scores = result.as_numpy(SCORES_OUTPUT)
            if chunk_scores is None or chunk_scores.size != len(video):
                raise TritonRewardError(
                    f"model {self.name!r} on {self.endpoint.url} returned no {SCORES_OUTPUT!r} "
                    f"of {len(video)} values"
                )
            scores.append(chunk_scores.reshape(-1))
        return np.concatenate(scores).astype(np.float32)

    def _infer_call(
        self, inputs: list[grpcclient.InferInput]
    ) -> Callable[[], grpcclient.InferResult]:
        """One inference request of `inputs`, ready for `_call`."""
        outputs = [grpcclient.InferRequestedOutput(SCORES_OUTPUT)]

        def infer() -> grpcclient.InferResult:
            return self.client.infer(
                self.name, inputs, outputs=outputs, client_timeout=self.endpoint.timeout_s
            )

        return infer

    def close(self) -> None:
        """Close the gRPC channel."""
        self.client.close()

    def _call(self, what: str, call: Callable[[], T]) -> T:
        """`call()` with bounded retries of timeouts and unavailability."""
        attempts = 1 + self.endpoint.max_retries
        pause = self.endpoint.retry_backoff_s
        last_error: InferenceServerException | None = None
        for attempt in range(attempts):
            try:
                return call()
            except InferenceServerException as error:
                if error.status() not in RETRYABLE:
                    raise TritonRewardError(
                        f"Triton server {self.endpoint.url} refused to {what} for model "
                        f"{self.name!r}: {error.status()}: {error.message()}"
                    ) from None
                last_error = error
            if attempt + 1 < attempts:
                time.sleep(pause)
                pause *= 2
        assert last_error is not None
        raise TritonRewardError(
            f"Triton server {self.endpoint.url} did not {what} for model {self.name!r} in "
            f"{attempts} attempt(s) of {self.endpoint.timeout_s:g} s each (last error "
            f"{last_error.status()}: {last_error.message()}); check that the server is running "
            "and triton.url, or raise triton.timeout_s / triton.max_retries"
        )


def build_triton_reward_set(
    config: RewardSetConfig, embedder: PromptEmbedder | None = None
) -> RewardSet:
    """The rewards `config` names: learned ones on its Triton server, structural in-process."""
    rewards: list[StructuralReward | TritonReward] = []
    for name in config.names:
        if name is RewardName.STRUCTURAL:
            rewards.append(StructuralReward())
        else:
            rewards.append(TritonReward(name.value, config.triton, embedder))
    return RewardSet(rewards, config)

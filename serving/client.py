"""Python client SDK of the vpt generation service: sync `VideoClient`, asyncio `AsyncVideoClient`.

    with VideoClient("127.0.0.1:50051", api_key="...") as client:
        result = client.generate("red circle moving left", seed=3, on_chunk=print)
        result.write_mp4("video.mp4")
        client.submit_feedback(result.generation_id, rating=5)

Frames are yielded as they arrive (`stream`, or `on_chunk` in `generate`); every call has a
deadline (`timeout`, seconds); UNAVAILABLE is retried with exponential backoff (a stream only
while nothing was received, so a retry never duplicates a generation that started); every gRPC
failure is raised as a typed `VptError` subclass.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import grpc
import numpy as np

from serving.protos import pb, pb_grpc, types_pb
from vpt.video_io import write_video

OutputFormatName = Literal["raw", "mp4"]
DEFAULT_MAX_MESSAGE_BYTES = 16 << 20
T = TypeVar("T")


class VptError(Exception):
    """A call to the service failed; `code` is the gRPC status, `details` the server's message."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details


class InvalidRequestError(VptError):
    """INVALID_ARGUMENT: the message names the bad field."""


class AuthenticationError(VptError):
    """UNAUTHENTICATED: missing or wrong API key."""


class OverloadedError(VptError):
    """RESOURCE_EXHAUSTED: the server's queue is full; retry later."""


class NotFoundError(VptError):
    """NOT_FOUND: no such generation."""


class ConflictError(VptError):
    """ALREADY_EXISTS or FAILED_PRECONDITION."""


class DeadlineExceededError(VptError):
    """The call's deadline passed."""


class GenerationCancelledError(VptError):
    """CANCELLED: the generation was cancelled."""


class UnavailableError(VptError):
    """UNAVAILABLE after all retries (server down or draining)."""


class ServerError(VptError):
    """INTERNAL or any other failure on the server."""


_ERRORS: dict[grpc.StatusCode, type[VptError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidRequestError,
    grpc.StatusCode.UNAUTHENTICATED: AuthenticationError,
    grpc.StatusCode.PERMISSION_DENIED: AuthenticationError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: OverloadedError,
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.ALREADY_EXISTS: ConflictError,
    grpc.StatusCode.FAILED_PRECONDITION: ConflictError,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceededError,
    grpc.StatusCode.CANCELLED: GenerationCancelledError,
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
}


def translate(error: grpc.RpcError) -> VptError:
    code = error.code()  # type: ignore[attr-defined]
    details = error.details() or ""  # type: ignore[attr-defined]
    return _ERRORS.get(code, ServerError)(code, details)


@dataclass
class GenerationResult:
    """A finished generation as the client received it."""

    generation_id: str
    started: pb.GenerationStarted
    completed: pb.GenerationCompleted
    chunks: list[pb.VideoChunk]
    time_to_first_chunk_seconds: float
    """Measured by the client: call start to first chunk."""
    duration_seconds: float
    """Measured by the client: call start to the completed message."""

    @property
    def model_version(self) -> str:
        return self.started.model.version

    @property
    def seed(self) -> int:
        return self.started.effective_params.seed

    @property
    def frames(self) -> np.ndarray:
        """uint8 `(F, H, W, 3)` (raw output format only)."""
        if self.started.output_format != types_pb.OUTPUT_FORMAT_RAW_RGB:
            raise ValueError("frames are only available for output_format='raw'")
        return np.concatenate([chunk_frames(c) for c in self.chunks])

    def write_mp4(self, path: str | Path) -> Path:
        """Write the video as H.264 MP4 (re-encoded from raw frames, or the single MP4 segment)."""
        target = Path(path)
        if self.started.output_format == types_pb.OUTPUT_FORMAT_RAW_RGB:
            return write_video(self.frames, target, fps=self.started.effective_params.fps)
        if len(self.chunks) != 1:
            raise ValueError("an MP4-format result with several segments: write each segment")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(self.chunks[0].data)
        return target


def chunk_frames(chunk: pb.VideoChunk) -> np.ndarray:
    """The uint8 `(F, H, W, 3)` frames of a raw-RGB chunk."""
    expected = chunk.num_frames * chunk.height * chunk.width * 3
    if len(chunk.data) != expected:
        raise ValueError(f"chunk {chunk.sequence} has {len(chunk.data)} bytes, expected {expected}")
    array = np.frombuffer(chunk.data, dtype=np.uint8)
    return array.reshape(chunk.num_frames, chunk.height, chunk.width, 3)


@dataclass(frozen=True)
class PairwiseFeedback:
    """A GSB preference of the rated generation against `other_generation_id`."""

    other_generation_id: str
    preferences: dict[str, str] = field(default_factory=dict)
    """dimension (overall, visual, motion, text_alignment) -> good, same or bad."""


def build_request(
    prompt: str,
    *,
    seed: int | None = None,
    steps: int = 0,
    guidance: float | None = None,
    frames_per_chunk: int = 0,
    output_format: OutputFormatName = "raw",
    enhance: bool | None = None,
    strict: bool = False,
) -> pb.GenerateVideoRequest:
    params = types_pb.GenerationParams(num_steps=steps, frames_per_chunk=frames_per_chunk)
    if seed is not None:
        params.seed = seed
    if guidance is not None:
        params.guidance_scale = guidance
    formats = {"raw": types_pb.OUTPUT_FORMAT_RAW_RGB, "mp4": types_pb.OUTPUT_FORMAT_MP4_H264}
    if output_format not in formats:
        raise ValueError(f"output_format must be 'raw' or 'mp4', got {output_format!r}")
    enhancement = {
        None: pb.PROMPT_ENHANCEMENT_UNSPECIFIED,
        True: pb.PROMPT_ENHANCEMENT_ENABLED,
        False: pb.PROMPT_ENHANCEMENT_DISABLED,
    }[enhance]
    return pb.GenerateVideoRequest(
        prompt=prompt,
        params=params,
        output_format=formats[output_format],  # type: ignore[arg-type]
        prompt_enhancement=enhancement,
        strict=strict,
    )


def build_feedback(
    generation_id: str,
    *,
    feedback_id: str | None = None,
    rating: int | None = None,
    thumbs_up: bool | None = None,
    pairwise: PairwiseFeedback | None = None,
    comment: str = "",
) -> types_pb.Feedback:
    given = [x is not None for x in (rating, thumbs_up, pairwise)]
    if sum(given) != 1:
        raise ValueError("give exactly one of rating, thumbs_up or pairwise")
    feedback = types_pb.Feedback(
        feedback_id=feedback_id or uuid.uuid4().hex, generation_id=generation_id, comment=comment
    )
    if rating is not None:
        feedback.rating.stars = rating
    elif thumbs_up is not None:
        feedback.thumbs.is_up = thumbs_up
    elif pairwise is not None:
        feedback.pairwise.other_generation_id = pairwise.other_generation_id
        for dimension, preference in pairwise.preferences.items():
            feedback.pairwise.preferences.add(
                dimension=types_pb.Dimension.Value(f"DIMENSION_{dimension.upper()}"),
                preference=types_pb.Preference.Value(f"PREFERENCE_{preference.upper()}"),
            )
    return feedback


class _Assembler:
    """Collects a stream's messages into a GenerationResult."""

    def __init__(self, on_chunk: Callable[[pb.VideoChunk], None] | None) -> None:
        self.on_chunk = on_chunk
        self.started_at = time.monotonic()
        self.first_chunk_at: float | None = None
        self.started: pb.GenerationStarted | None = None
        self.chunks: list[pb.VideoChunk] = []
        self.result: GenerationResult | None = None

    def add(self, message: pb.GenerateVideoResponse) -> None:
        kind = message.WhichOneof("event")
        if kind == "started":
            self.started = message.started
        elif kind == "chunk":
            if self.first_chunk_at is None:
                self.first_chunk_at = time.monotonic()
            self.chunks.append(message.chunk)
            if self.on_chunk is not None:
                self.on_chunk(message.chunk)
        elif kind == "completed":
            if self.started is None:
                raise ServerError(grpc.StatusCode.INTERNAL, "completed before started")
            now = time.monotonic()
            self.result = GenerationResult(
                generation_id=self.started.generation_id,
                started=self.started,
                completed=message.completed,
                chunks=self.chunks,
                time_to_first_chunk_seconds=(self.first_chunk_at or now) - self.started_at,
                duration_seconds=now - self.started_at,
            )

    def finish(self) -> GenerationResult:
        if self.result is None:
            raise ServerError(grpc.StatusCode.INTERNAL, "stream ended without a completed message")
        return self.result


def _channel_options(max_message_bytes: int) -> list[tuple[str, int]]:
    return [
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
    ]


class _Settings:
    def __init__(self, api_key: str | None, timeout: float, retries: int, backoff: float) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout}")
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries}")
        self.metadata: tuple[tuple[str, str | bytes], ...] = (
            (("authorization", f"Bearer {api_key}"),) if api_key else ()
        )
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff

    def delay(self, attempt: int) -> float:
        return float(self.backoff * (2**attempt))


class VideoClient:
    """Blocking client."""

    def __init__(
        self,
        target: str,
        api_key: str | None = None,
        *,
        timeout: float = 120.0,
        retries: int = 3,
        backoff: float = 0.25,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> None:
        self._settings = _Settings(api_key, timeout, retries, backoff)
        self._channel = grpc.insecure_channel(target, options=_channel_options(max_message_bytes))
        self._stub = pb_grpc.GenerationServiceStub(self._channel)

    def __enter__(self) -> VideoClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

    def _unary(self, method: Callable[..., T], request: Any, timeout: float | None) -> T:
        settings = self._settings
        for attempt in range(settings.retries + 1):
            try:
                return method(
                    request, timeout=timeout or settings.timeout, metadata=settings.metadata
                )
            except grpc.RpcError as error:
                if error.code() != grpc.StatusCode.UNAVAILABLE or attempt == settings.retries:  # type: ignore[attr-defined]
                    raise translate(error) from None
                time.sleep(settings.delay(attempt))
        raise AssertionError("unreachable")

    def stream(
        self, prompt: str, *, timeout: float | None = None, **params: Any
    ) -> Iterator[pb.GenerateVideoResponse]:
        """Yield the raw stream messages (started, chunks, completed) as they arrive."""
        request = build_request(prompt, **params)
        settings = self._settings
        for attempt in range(settings.retries + 1):
            received = False
            call = self._stub.GenerateVideo(
                request, timeout=timeout or settings.timeout, metadata=settings.metadata
            )
            try:
                for message in call:
                    received = True
                    yield message
                return
            except grpc.RpcError as error:
                retriable = error.code() == grpc.StatusCode.UNAVAILABLE and not received  # type: ignore[attr-defined]
                if not retriable or attempt == settings.retries:
                    raise translate(error) from None
                time.sleep(settings.delay(attempt))
            finally:
                call.cancel()

    def generate(
        self,
        prompt: str,
        *,
        on_chunk: Callable[[pb.VideoChunk], None] | None = None,
        timeout: float | None = None,
        **params: Any,
    ) -> GenerationResult:
        """Generate one video; `on_chunk` sees each chunk as it arrives."""
        assembler = _Assembler(on_chunk)
        for message in self.stream(prompt, timeout=timeout, **params):
            assembler.add(message)
        return assembler.finish()

    def submit_feedback(
        self, generation_id: str, *, timeout: float | None = None, **feedback: Any
    ) -> pb.SubmitFeedbackResponse:
        """Rate a generation (rating=1..5, thumbs_up=bool or pairwise=PairwiseFeedback)."""
        request = pb.SubmitFeedbackRequest(feedback=build_feedback(generation_id, **feedback))
        return self._unary(self._stub.SubmitFeedback, request, timeout)

    def get_generation(
        self, generation_id: str, *, timeout: float | None = None
    ) -> pb.GetGenerationResponse:
        request = pb.GetGenerationRequest(generation_id=generation_id)
        return self._unary(self._stub.GetGeneration, request, timeout)

    def cancel(
        self, generation_id: str, *, timeout: float | None = None
    ) -> pb.CancelGenerationResponse:
        request = pb.CancelGenerationRequest(generation_id=generation_id)
        return self._unary(self._stub.CancelGeneration, request, timeout)


class AsyncVideoClient:
    """asyncio client (grpc.aio); same methods as `VideoClient`, awaited."""

    def __init__(
        self,
        target: str,
        api_key: str | None = None,
        *,
        timeout: float = 120.0,
        retries: int = 3,
        backoff: float = 0.25,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> None:
        self._settings = _Settings(api_key, timeout, retries, backoff)
        self._channel = grpc.aio.insecure_channel(
            target, options=_channel_options(max_message_bytes)
        )
        self._stub = pb_grpc.GenerationServiceStub(self._channel)

    async def __aenter__(self) -> AsyncVideoClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._channel.close()

    async def _unary(self, method: Callable[..., Any], request: Any, timeout: float | None) -> Any:
        settings = self._settings
        for attempt in range(settings.retries + 1):
            try:
                return await method(
                    request, timeout=timeout or settings.timeout, metadata=settings.metadata
                )
            except grpc.RpcError as error:
                if error.code() != grpc.StatusCode.UNAVAILABLE or attempt == settings.retries:  # type: ignore[attr-defined]
                    raise translate(error) from None
                await asyncio.sleep(settings.delay(attempt))
        raise AssertionError("unreachable")

    async def stream(
        self, prompt: str, *, timeout: float | None = None, **params: Any
    ) -> AsyncIterator[pb.GenerateVideoResponse]:
        request = build_request(prompt, **params)
        settings = self._settings
        for attempt in range(settings.retries + 1):
            received = False
            call = self._stub.GenerateVideo(
                request, timeout=timeout or settings.timeout, metadata=settings.metadata
            )
            try:
                async for message in call:
                    received = True
                    yield message
                return
            except grpc.RpcError as error:
                retriable = error.code() == grpc.StatusCode.UNAVAILABLE and not received  # type: ignore[attr-defined]
                if not retriable or attempt == settings.retries:
                    raise translate(error) from None
                await asyncio.sleep(settings.delay(attempt))
            finally:
                call.cancel()

    async def generate(
        self,
        prompt: str,
        *,
        on_chunk: Callable[[pb.VideoChunk], None] | None = None,
        timeout: float | None = None,
        **params: Any,
    ) -> GenerationResult:
        assembler = _Assembler(on_chunk)
        async for message in self.stream(prompt, timeout=timeout, **params):
            assembler.add(message)
        return assembler.finish()

    async def submit_feedback(
        self, generation_id: str, *, timeout: float | None = None, **feedback: Any
    ) -> pb.SubmitFeedbackResponse:
        request = pb.SubmitFeedbackRequest(feedback=build_feedback(generation_id, **feedback))
        response: pb.SubmitFeedbackResponse = await self._unary(
            self._stub.SubmitFeedback, request, timeout
        )
        return response

    async def get_generation(
        self, generation_id: str, *, timeout: float | None = None
    ) -> pb.GetGenerationResponse:
        request = pb.GetGenerationRequest(generation_id=generation_id)
        response: pb.GetGenerationResponse = await self._unary(
            self._stub.GetGeneration, request, timeout
        )
        return response

    async def cancel(
        self, generation_id: str, *, timeout: float | None = None
    ) -> pb.CancelGenerationResponse:
        request = pb.CancelGenerationRequest(generation_id=generation_id)
        response: pb.CancelGenerationResponse = await self._unary(
            self._stub.CancelGeneration, request, timeout
        )
        return response

"""GenerationService: the public streaming API (grpc.aio servicer). Status codes live here.

GenerateVideo: validate (INVALID_ARGUMENT naming the field) -> refuse when draining
(UNAVAILABLE) or full (RESOURCE_EXHAUSTED) -> prompt-enhancement hook -> capture the active
model version -> Started -> chunks as the worker yields them -> Completed once the artifact is
stored and the event written. A client cancel or an expired deadline stops the worker at its
next denoising step and frees the slot; CancelGeneration does the same from another connection.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

import grpc
from google.protobuf.json_format import MessageToDict, ParseDict
from google.protobuf.timestamp_pb2 import Timestamp

from serving.enhancement import EnhancementHook, result_message
from serving.events.messages import EventPublisher, duration
from serving.jobs import Admission, GenerationJob, JobRunner, JobUpdate, model_ref, params_message
from serving.metrics import ServingMetrics
from serving.models import ModelIdentity, ModelRegistry
from serving.protos import pb, pb_grpc, types_pb
from serving.store import GenerationStore
from serving.validation import (
    RequestError,
    ResolvedRequest,
    validate_feedback,
    validate_generate,
    validate_id,
)
from vpt.streaming import VideoChunk
from vpt.video_io import encode_mp4_bytes

log = logging.getLogger(__name__)
CHUNK_HEADROOM_BYTES = 4096
_STATUS = {
    "queued": types_pb.GENERATION_STATUS_QUEUED,
    "running": types_pb.GENERATION_STATUS_RUNNING,
    "completed": types_pb.GENERATION_STATUS_COMPLETED,
    "failed": types_pb.GENERATION_STATUS_FAILED,
    "cancelled": types_pb.GENERATION_STATUS_CANCELLED,
}


def _timestamp(seconds: float | None) -> Timestamp | None:
    if seconds is None:
        return None
    value = Timestamp()
    value.FromNanoseconds(int(seconds * 1e9))
    return value


@dataclass(frozen=True)
class _Admitted:
    """A generation handed to a worker: its job, its update queue, its first message."""

    job: GenerationJob
    updates: asyncio.Queue[JobUpdate]
    started: pb.GenerationStarted


def _deliver(
    loop: asyncio.AbstractEventLoop, updates: asyncio.Queue[JobUpdate], update: JobUpdate
) -> None:
    """Hand a worker thread's update to the request handler's event loop."""
    if not loop.is_closed():
        loop.call_soon_threadsafe(updates.put_nowait, update)


class GenerationServicer(pb_grpc.GenerationServiceServicer):
    def __init__(
        self,
        registry: ModelRegistry,
        runner: JobRunner,
        store: GenerationStore,
        publisher: EventPublisher,
        enhancement: EnhancementHook,
        metrics: ServingMetrics,
        max_prompt_chars: int,
        max_message_bytes: int,
        is_enhancement_default: bool = False,
    ) -> None:
        self.registry = registry
        self.runner = runner
        self.admission: Admission = runner.admission
        self.store = store
        self.publisher = publisher
        self.enhancement = enhancement
        self.metrics = metrics
        self.max_prompt_chars = max_prompt_chars
        self.max_chunk_bytes = max_message_bytes - CHUNK_HEADROOM_BYTES
        self.is_enhancement_default = is_enhancement_default
        self.is_draining = False
        self.jobs: dict[str, GenerationJob] = {}

    async def _reject(
        self, context: grpc.aio.ServicerContext, reason: str, code: grpc.StatusCode, message: str
    ) -> None:
        self.metrics.rejections.labels(reason).inc()
        await context.abort(code, message)

    async def GenerateVideo(  # noqa: N802 (gRPC method name)
        self, request: pb.GenerateVideoRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.GenerateVideoResponse]:
        arrived = time.monotonic()
        admitted = await self._admit(request, context, arrived)
        if admitted is None:
            return
        job = admitted.job
        try:
            yield pb.GenerateVideoResponse(started=admitted.started)
            async for message in self._relay(admitted, context, arrived):
                yield message
        except asyncio.CancelledError:
            # The client went away or its deadline passed: stop the worker at its next step.
            remaining = context.time_remaining()
            job.stop("deadline" if remaining is not None and remaining <= 0 else "client")
            outcome = "deadline" if job.stop_reason == "deadline" else "cancelled"
            self.metrics.generations.labels(outcome).inc()
            raise
        finally:
            self.jobs.pop(job.generation_id, None)

    async def _admit(
        self, request: pb.GenerateVideoRequest, context: grpc.aio.ServicerContext, arrived: float
    ) -> _Admitted | None:
        """Validate, admit, enhance and hand the job to a worker; None if it was refused."""
        try:
            resolved = validate_generate(
                request, self.registry.active, self.max_prompt_chars, self.is_enhancement_default
            )
        except RequestError as error:
            await self._reject(
                context, "invalid_argument", grpc.StatusCode.INVALID_ARGUMENT, str(error)
            )
            return None
        if self.is_draining:
            await self._reject(
                context, "draining", grpc.StatusCode.UNAVAILABLE, "server is shutting down; retry"
            )
            return None
        if not self.admission.try_admit():
            await self._reject(
                context,
                "queue_full",
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"generation queue is full ({self.admission.max_concurrent} running, "
                f"{self.admission.max_queue} waiting); retry later",
            )
            return None
        loop = asyncio.get_running_loop()
        updates: asyncio.Queue[JobUpdate] = asyncio.Queue()
        generation_id = uuid.uuid4().hex
        try:
            enhanced = await self.enhancement.enhance(
                resolved.prompt, resolved.is_enhancement_requested
            )
            self.metrics.enhancement.labels(enhanced.result).inc()
            self.metrics.stage_duration.labels("enhance").observe(enhanced.seconds)
            model = self.registry.active  # captured once: the whole generation uses it
            resolved = replace(resolved, prompt=enhanced.prompt)
            remaining = context.time_remaining()
            job = GenerationJob(
                generation_id=generation_id,
                request=resolved,
                model=model,
                user_prompt=request.prompt,
                enhancement=enhanced.result,
                emit=lambda update: _deliver(loop, updates, update),
                deadline=None if remaining is None else time.monotonic() + remaining,
                admitted_at=arrived,
            )
            params = params_message(resolved, model)
            await asyncio.to_thread(
                self.store.create,
                generation_id,
                request.prompt,
                resolved.prompt,
                MessageToDict(params),
                {"name": model.identity.name, "version": model.identity.version,
                 "digest": model.identity.digest},
            )  # fmt: skip
            self.jobs[generation_id] = job
            self.runner.submit(job)
        except BaseException:
            if generation_id not in self.jobs:
                self.admission.withdraw()  # never reached a worker
            raise
        started = pb.GenerationStarted(
            generation_id=generation_id,
            model=model_ref(model),
            effective_prompt=resolved.prompt,
            effective_params=params,
            is_prompt_enhanced=enhanced.result == "enhanced",
            accepted_at=_timestamp(time.time()),
            output_format=resolved.output_format,  # type: ignore[arg-type]
            prompt=request.prompt,
            prompt_enhancement_result=result_message(enhanced.result),  # type: ignore[arg-type]
        )
        return _Admitted(job, updates, started)

    async def _relay(
        self, admitted: _Admitted, context: grpc.aio.ServicerContext, arrived: float
    ) -> AsyncIterator[pb.GenerateVideoResponse]:
        """Turn the worker's updates into chunk and completed messages (or an error status)."""
        job = admitted.job
        sequence = 0
        first_chunk_at: float | None = None
        while True:
            update = await admitted.updates.get()
            if update.kind == "chunk":
                assert update.chunk is not None
                for message in await self._chunk_messages(update.chunk, job.request, sequence):
                    yield pb.GenerateVideoResponse(chunk=message)
                    sequence += 1
                    if first_chunk_at is None:
                        first_chunk_at = time.monotonic()
                        self.metrics.time_to_first_chunk.observe(first_chunk_at - arrived)
                    self.metrics.frames.inc(message.num_frames)
            elif update.kind == "completed":
                assert update.completion is not None
                completion = update.completion
                finished = time.monotonic()
                self.metrics.generations.labels("ok").inc()
                self.metrics.generation_duration.observe(finished - arrived)
                yield pb.GenerateVideoResponse(
                    completed=pb.GenerationCompleted(
                        total_frames=completion.total_frames,
                        artifact_uri=completion.artifact.uri,
                        artifact_sha256=completion.artifact.sha256,
                        queue_wait=duration(completion.queue_wait_seconds),
                        time_to_first_chunk=duration((first_chunk_at or finished) - arrived),
                        total_duration=duration(finished - arrived),
                        denoise_duration=duration(completion.denoise_seconds),
                        decode_duration=duration(completion.decode_seconds),
                    )
                )
                return
            elif update.kind == "cancelled":
                is_deadline = job.stop_reason == "deadline"
                self.metrics.generations.labels("deadline" if is_deadline else "cancelled").inc()
                code = (
                    grpc.StatusCode.DEADLINE_EXCEEDED if is_deadline else grpc.StatusCode.CANCELLED
                )
                await context.abort(code, f"generation {job.generation_id} {update.reason}")
                return
            else:
                self.metrics.generations.labels("failed").inc()
                await context.abort(
                    grpc.StatusCode.INTERNAL,
                    f"generation {job.generation_id} failed: {update.reason}",
                )
                return

    async def _chunk_messages(
        self, chunk: VideoChunk, resolved: ResolvedRequest, sequence: int
    ) -> list[pb.VideoChunk]:
        frames = chunk.frames
        _, height, width, _ = frames.shape
        frame_bytes = height * width * 3
        per_message = max(1, self.max_chunk_bytes // frame_bytes)
        messages: list[pb.VideoChunk] = []
        for offset in range(0, frames.shape[0], per_message):
            part = frames[offset : offset + per_message]
            if resolved.output_format == types_pb.OUTPUT_FORMAT_MP4_H264:
                started = time.monotonic()
                data = await asyncio.to_thread(encode_mp4_bytes, part, resolved.fps)
                self.metrics.stage_duration.labels("encode").observe(time.monotonic() - started)
            else:
                data = part.tobytes()
            messages.append(
                pb.VideoChunk(
                    sequence=sequence + len(messages),
                    first_frame_index=chunk.first_frame_index + offset,
                    num_frames=part.shape[0],
                    height=height,
                    width=width,
                    data=data,
                )
            )
        return messages

    async def GetGeneration(  # noqa: N802 (gRPC method name)
        self, request: pb.GetGenerationRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetGenerationResponse:
        try:
            validate_id("generation_id", request.generation_id)
        except RequestError as error:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
        record = await asyncio.to_thread(self.store.get, request.generation_id)
        if record is None:
            await context.abort(
                grpc.StatusCode.NOT_FOUND, f"generation_id: no generation {request.generation_id!r}"
            )
        assert record is not None
        params = ParseDict(record.params, types_pb.GenerationParams())
        return pb.GetGenerationResponse(
            generation_id=record.generation_id,
            status=_STATUS[record.status],
            prompt=record.prompt,
            effective_prompt=record.effective_prompt,
            effective_params=params,
            model=types_pb.ModelRef(**record.model),
            artifact_uri=record.artifact_uri,
            artifact_sha256=record.artifact_sha256,
            error=record.error,
            created_at=_timestamp(record.created_at),
            finished_at=_timestamp(record.finished_at),
        )

    async def CancelGeneration(  # noqa: N802 (gRPC method name)
        self, request: pb.CancelGenerationRequest, context: grpc.aio.ServicerContext
    ) -> pb.CancelGenerationResponse:
        try:
            validate_id("generation_id", request.generation_id)
        except RequestError as error:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
        job = self.jobs.get(request.generation_id)
        if job is not None:
            job.stop("admin")
            return pb.CancelGenerationResponse(
                is_cancelled=True, status=types_pb.GENERATION_STATUS_CANCELLED
            )
        record = await asyncio.to_thread(self.store.get, request.generation_id)
        if record is None:
            await context.abort(
                grpc.StatusCode.NOT_FOUND, f"generation_id: no generation {request.generation_id!r}"
            )
        assert record is not None
        return pb.CancelGenerationResponse(is_cancelled=False, status=_STATUS[record.status])

    async def SubmitFeedback(  # noqa: N802 (gRPC method name)
        self, request: pb.SubmitFeedbackRequest, context: grpc.aio.ServicerContext
    ) -> pb.SubmitFeedbackResponse:
        feedback = request.feedback
        try:
            validate_feedback(feedback)
        except RequestError as error:
            self.metrics.rejections.labels("invalid_argument").inc()
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
        fingerprint = feedback.SerializeToString(deterministic=True).hex()
        existing = await asyncio.to_thread(self.store.feedback, feedback.feedback_id)
        if existing is not None:
            if existing.fingerprint != fingerprint:
                await context.abort(
                    grpc.StatusCode.ALREADY_EXISTS,
                    f"feedback.feedback_id: {feedback.feedback_id!r} was already used for "
                    "different feedback; use a new id",
                )
            return pb.SubmitFeedbackResponse(is_duplicate=True, event_id=existing.event_id)
        generation_ids = [feedback.generation_id]
        if feedback.WhichOneof("signal") == "pairwise":
            generation_ids.append(feedback.pairwise.other_generation_id)
        records = [await asyncio.to_thread(self.store.get, g) for g in generation_ids]
        for field, generation_id, record in zip(
            ("feedback.generation_id", "feedback.pairwise.other_generation_id"),
            generation_ids,
            records,
            strict=False,
        ):
            if record is None:
                await context.abort(
                    grpc.StatusCode.NOT_FOUND, f"{field}: no generation {generation_id!r}"
                )
        rated = records[0]
        assert rated is not None
        model = types_pb.ModelRef(**rated.model)
        try:
            event_id = await asyncio.to_thread(self.publisher.feedback_submitted, feedback, model)
        except Exception as error:
            log.exception("FeedbackSubmitted was not written")
            await context.abort(
                grpc.StatusCode.UNAVAILABLE,
                f"feedback could not be recorded durably ({error}); retry",
            )
        await asyncio.to_thread(
            self.store.record_feedback,
            feedback.feedback_id,
            fingerprint,
            event_id,
            feedback.generation_id,
        )
        return pb.SubmitFeedbackResponse(is_duplicate=False, event_id=event_id)


def identity_message(identity: ModelIdentity) -> types_pb.ModelRef:
    return types_pb.ModelRef(name=identity.name, version=identity.version, digest=identity.digest)

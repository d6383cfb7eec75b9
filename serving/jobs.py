"""Generation jobs on worker threads: admission, the denoising worker and the finaliser.

A job is admitted by `Admission` (bounded: at most `max_concurrent` running plus `max_queue`
waiting), then runs on a worker thread that streams chunks from the model version captured at
admission. When its frames are complete the worker frees its slot and hands the job to a
finaliser thread, which encodes the MP4, stores the artifact, records the outcome and publishes
`GenerationCompleted`; cancelled and failed jobs are finalised too (record + event). Everything
the request handler needs arrives as `JobUpdate`s through a thread-safe callback, so the whole
lifecycle completes even when the client has gone away.

No gRPC here: status codes are chosen by the servicer.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from serving.artifacts import ArtifactStore, StoredArtifact
from serving.enhancement import EnhancementResult, result_message
from serving.events.messages import EventPublisher, duration
from serving.metrics import ServingMetrics
from serving.models import ResidentModel
from serving.protos import events_pb, types_pb
from serving.store import GenerationStore, Status
from serving.validation import ResolvedRequest
from vpt.streaming import GenerationCancelled, StreamRequest, VideoChunk

log = logging.getLogger(__name__)

StopReason = Literal["client", "deadline", "admin", "shutdown"]
UpdateKind = Literal["chunk", "completed", "cancelled", "failed"]


class Admission:
    """Counts running and waiting jobs; refuses past the bound."""

    def __init__(self, max_concurrent: int, max_queue: int, metrics: ServingMetrics) -> None:
        self.max_concurrent = max_concurrent
        self.max_queue = max_queue
        self.metrics = metrics
        self._lock = threading.Lock()
        self.waiting = 0
        self.running = 0

    def try_admit(self) -> bool:
        with self._lock:
            if self.waiting + self.running >= self.max_concurrent + self.max_queue:
                return False
            self.waiting += 1
            self.metrics.queue_depth.set(self.waiting)
            return True

    def withdraw(self) -> None:
        """An admitted job left before reaching a worker."""
        with self._lock:
            self.waiting -= 1
            self.metrics.queue_depth.set(self.waiting)

    def start(self) -> None:
        with self._lock:
            self.waiting -= 1
            self.running += 1
            self.metrics.queue_depth.set(self.waiting)
            self.metrics.in_flight.set(self.running)

    def finish(self) -> None:
        with self._lock:
            self.running -= 1
            self.metrics.in_flight.set(self.running)

    @property
    def is_idle(self) -> bool:
        with self._lock:
            return self.waiting == 0 and self.running == 0


@dataclass(frozen=True)
class Completion:
    """What the completed message reports."""

    artifact: StoredArtifact
    queue_wait_seconds: float
    denoise_seconds: float
    decode_seconds: float
    total_frames: int


@dataclass(frozen=True)
class JobUpdate:
    kind: UpdateKind
    chunk: VideoChunk | None = None
    completion: Completion | None = None
    reason: str = ""


@dataclass
class GenerationJob:
    """One admitted generation."""

    generation_id: str
    request: ResolvedRequest
    model: ResidentModel
    user_prompt: str
    emit: Callable[[JobUpdate], None]
    """Thread-safe delivery of updates to the request handler."""
    enhancement: EnhancementResult = "disabled"
    """What the prompt enhancer did (`request.prompt` is the rewrite only for `enhanced`)."""
    deadline: float | None = None
    """time.monotonic() after which the job stops (the RPC deadline)."""
    admitted_at: float = field(default_factory=time.monotonic)
    stop_event: threading.Event = field(default_factory=threading.Event)
    stop_reason: StopReason | None = None

    def stop(self, reason: StopReason) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason
        self.stop_event.set()

    def should_stop(self) -> bool:
        if self.deadline is not None and time.monotonic() > self.deadline:
            self.stop("deadline")
        return self.stop_event.is_set()


def model_ref(model: ResidentModel) -> types_pb.ModelRef:
    identity = model.identity
    return types_pb.ModelRef(name=identity.name, version=identity.version, digest=identity.digest)


class JobRunner:
    """Runs jobs on `max_concurrent` worker threads and finalises them on two more."""

    def __init__(
        self,
        admission: Admission,
        store: GenerationStore,
        artifacts: ArtifactStore,
        publisher: EventPublisher,
        metrics: ServingMetrics,
    ) -> None:
        self.admission = admission
        self.store = store
        self.artifacts = artifacts
        self.publisher = publisher
        self.metrics = metrics
        self.workers = ThreadPoolExecutor(admission.max_concurrent, thread_name_prefix="vpt-gen")
        self.finalisers = ThreadPoolExecutor(2, thread_name_prefix="vpt-final")

    def submit(self, job: GenerationJob) -> None:
        self.workers.submit(self._run, job)

    def _run(self, job: GenerationJob) -> None:
        self.admission.start()
        started = time.monotonic()
        queue_wait = started - job.admitted_at
        self.metrics.queue_wait.observe(queue_wait)
        frames: list[np.ndarray] = []
        denoise = decode = 0.0
        outcome: Status = "completed"
        error = ""
        try:
            if job.should_stop():
                raise GenerationCancelled("stopped while queued")
            self.store.set_running(job.generation_id, _model_dict(job.model))
            stream_request = StreamRequest(
                prompt=job.request.prompt,
                seed=job.request.seed,
                sampler=job.request.sampler,
                frames_per_chunk=job.request.frames_per_chunk,
            )
            for chunk in job.model.streamer.stream(stream_request, job.should_stop):
                denoise += chunk.timings.denoise_seconds
                decode += chunk.timings.decode_seconds
                frames.append(chunk.frames)
                job.emit(JobUpdate("chunk", chunk=chunk))
        except GenerationCancelled:
            outcome, error = "cancelled", f"stopped ({job.stop_reason or 'client'})"
        except Exception as exception:  # a model failure fails this job, not the server
            log.exception("generation %s failed", job.generation_id)
            outcome, error = "failed", f"{type(exception).__name__}: {exception}"
        finally:
            self.admission.finish()
        self.metrics.stage_duration.labels("denoise").observe(denoise)
        self.metrics.stage_duration.labels("decode").observe(decode)
        timing = (queue_wait, denoise, decode, time.monotonic() - job.admitted_at)
        self.finalisers.submit(self._finalise, job, outcome, error, frames, timing)

    def _finalise(
        self,
        job: GenerationJob,
        outcome: Status,
        error: str,
        frames: list[np.ndarray],
        timing: tuple[float, float, float, float],
    ) -> None:
        queue_wait, denoise, decode, _ = timing
        artifact = StoredArtifact("", "", 0)
        if outcome == "completed":
            try:
                video = np.concatenate(frames)
                started = time.monotonic()
                artifact = self.artifacts.put(job.generation_id, video, job.request.fps)
                self.metrics.stage_duration.labels("store").observe(time.monotonic() - started)
            except Exception as exception:
                log.exception("storing the artifact of %s failed", job.generation_id)
                outcome, error = "failed", f"artifact store: {exception}"
        self.store.finish(job.generation_id, outcome, artifact.uri, artifact.sha256, error)
        payload = events_pb.GenerationCompleted(
            generation_id=job.generation_id,
            status={
                "completed": types_pb.GENERATION_STATUS_COMPLETED,
                "failed": types_pb.GENERATION_STATUS_FAILED,
                "cancelled": types_pb.GENERATION_STATUS_CANCELLED,
            }[outcome],
            prompt=job.user_prompt,
            effective_prompt=job.request.prompt,
            model=model_ref(job.model),
            artifact_uri=artifact.uri,
            artifact_sha256=artifact.sha256,
            queue_wait=duration(queue_wait),
            total_duration=duration(time.monotonic() - job.admitted_at),
            error=error,
            prompt_enhancement_result=result_message(job.enhancement),  # type: ignore[arg-type]
        )
        payload.params.CopyFrom(params_message(job.request, job.model))
        try:
            self.publisher.generation_completed(payload)
        except Exception:
            log.exception("GenerationCompleted for %s was not written", job.generation_id)
        if outcome == "completed":
            completion = Completion(artifact, queue_wait, denoise, decode, sum(map(len, frames)))
            job.emit(JobUpdate("completed", completion=completion))
        else:
            job.emit(JobUpdate("cancelled" if outcome == "cancelled" else "failed", reason=error))

    def shutdown(self) -> None:
        self.workers.shutdown(wait=True)
        self.finalisers.shutdown(wait=True)


def _model_dict(model: ResidentModel) -> dict[str, str]:
    identity = model.identity
    return {"name": identity.name, "version": identity.version, "digest": identity.digest}


def params_message(request: ResolvedRequest, model: ResidentModel) -> types_pb.GenerationParams:
    geometry = model.geometry
    return types_pb.GenerationParams(
        num_frames=geometry.frames,
        height=geometry.height,
        width=geometry.width,
        seed=request.seed,
        num_steps=request.sampler.num_steps,
        guidance_scale=request.sampler.guidance_scale,
        frames_per_chunk=request.frames_per_chunk,
        fps=request.fps,
    )

"""Generators that yield a video as chunks of frames: the interface services stream from.

A `StreamingGenerator` turns one `StreamRequest` into an iterator of `VideoChunk`s: consecutive
runs of uint8 frames `(F, H, W, 3)` with the index of their first frame and the time spent on
them. A bidirectional model (`vpt.generator.Generator`, adapted by `BidirectionalStreamer`)
denoises all frames together, so it yields the finished video, split into chunks, at the end;
an autoregressive student yields each chunk as soon as it is denoised and decoded. A service
written against this protocol streams both without change.

Cancellation is cooperative: the generator calls `should_stop()` at least between denoising
steps (and between chunks) and raises `GenerationCancelled` when it returns True, so a
cancelled request frees its device at the next step boundary.

The protocol holds no network or threading code: a server runs `stream` in a worker thread and
turns `should_stop` into "the client went away or the deadline passed".
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from torch import Tensor

from vpt.generator import Generator, SamplerSettings, VideoGeometry

StopCheck = Callable[[], bool]
"""Returns True when the generation should stop (client cancelled, deadline passed)."""


class GenerationCancelled(Exception):  # noqa: N818 (a signal, not a failure)
    """Raised from inside `stream` when `should_stop()` turned True."""


@dataclass(frozen=True)
class StreamRequest:
    """One video to generate."""

    prompt: str
    """The prompt the model sees (after any enhancement)."""
    seed: int
    """Noise seed; the same (prompt, seed, sampler) gives the same frames."""
    sampler: SamplerSettings
    """Sampling settings (steps, shift, guidance)."""
    frames_per_chunk: int = 0
    """Frames per yielded chunk; 0 lets the generator choose (its natural chunk)."""


@dataclass(frozen=True)
class ChunkTimings:
    """Seconds spent producing one chunk, by stage."""

    denoise_seconds: float = 0.0
    """Transformer evaluations and sampler steps."""
    decode_seconds: float = 0.0
    """Latents to pixels."""


@dataclass(frozen=True)
class VideoChunk:
    """A run of consecutive frames of the video being generated."""

    frames: np.ndarray
    """uint8 `(F, H, W, 3)`."""
    first_frame_index: int
    """Index of `frames[0]` in the whole video."""
    timings: ChunkTimings
    """Time spent on this chunk (a generator that makes all frames at once charges it all to
    the first chunk)."""


class StreamingGenerator(Protocol):
    """Anything that yields a video chunk by chunk."""

    @property
    def geometry(self) -> VideoGeometry:
        """The video size it generates."""
        ...

    @property
    def default_sampler(self) -> SamplerSettings:
        """Sampling settings used when a request does not choose."""
        ...

    def stream(self, request: StreamRequest, should_stop: StopCheck) -> Iterator[VideoChunk]:
        """Yield the video's chunks in order; raise GenerationCancelled when told to stop."""
        ...


def split_frames(frames_FHWC: np.ndarray, frames_per_chunk: int) -> list[tuple[int, np.ndarray]]:
    """(first frame index, frames) runs of at most `frames_per_chunk` (0 = one run)."""
    if frames_per_chunk < 0:
        raise ValueError(f"frames_per_chunk must be >= 0, got {frames_per_chunk}")
    total = frames_FHWC.shape[0]
    size = frames_per_chunk or total
    return [(start, frames_FHWC[start : start + size]) for start in range(0, total, size)]


class BidirectionalStreamer:
    """`StreamingGenerator` over a bidirectional `Generator`: all frames at the end.

    `should_stop` is checked before sampling, after every denoising step and before decoding.
    """

    def __init__(self, generator: Generator) -> None:
        self.generator = generator

    @property
    def geometry(self) -> VideoGeometry:
        return self.generator.config.geometry

    @property
    def default_sampler(self) -> SamplerSettings:
        return self.generator.config.sampler

    def stream(self, request: StreamRequest, should_stop: StopCheck) -> Iterator[VideoChunk]:
        def check(_step: int = -1, _latents: Tensor | None = None) -> None:
            if should_stop():
                raise GenerationCancelled("generation stopped between denoising steps")

        check()
        started = time.perf_counter()
        latents = self.generator.generate_latents(
            [request.prompt], [request.seed], request.sampler, on_step=check
        )
        denoised = time.perf_counter()
        check()
        video = self.generator.decode(latents)[0]
        timings = ChunkTimings(
            denoise_seconds=denoised - started, decode_seconds=time.perf_counter() - denoised
        )
        for index, (first, frames) in enumerate(split_frames(video, request.frames_per_chunk)):
            if index > 0:
                check()
            yield VideoChunk(
                frames=frames,
                first_frame_index=first,
                timings=timings if index == 0 else ChunkTimings(),
            )

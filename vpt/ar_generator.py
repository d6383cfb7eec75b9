"""Autoregressive few-step sampling with the causal student, chunk by chunk, streamed.

The inference loop of Self-Forcing (Huang et al., arXiv 2506.08009, Algorithm 1 and
`pipeline/causal_inference.py` of guandeh17/Self-Forcing): for each chunk of frames, start from
Gaussian noise and run the student's few-step sampler over its (shift-warped) step list
sigma_0 = 1 > sigma_1 > ... > sigma_{K-1}: predict the clean chunk x0 = x - sigma_k * v, then
re-noise it with fresh noise to the next level, x = (1 - sigma_{k+1}) x0 + sigma_{k+1} eps. The
last prediction is the chunk. Then one "cache-fill" pass at sigma = `context_sigma` (0: clean)
writes the chunk's keys and values into the KV cache, so later chunks attend to clean context,
never to noisy intermediate states. No classifier-free guidance: one network evaluation per step.

`rollout_chunks` is that loop as a Python generator yielding each chunk *before* its cache-fill
pass (the fill costs the next chunk, not this one's latency). Training (`vpt.training.distill`)
runs the same loop with gradient at one exit step; `ARGenerator.stream` adds decoding and
timing; `ARStreamer` adapts it to the services' `vpt.streaming.StreamingGenerator` protocol.

Shape legend: B batch, C latent channels, F latent frames, H/W latent height/width.
Pixel videos are uint8 `(B, F, H, W, 3)`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from vpt.checkpoint import CheckpointError, load_generator
from vpt.config import ConfigError, config_from_dict
from vpt.generator import Generator, GeneratorConfig, SamplerSettings, VideoGeometry
from vpt.models.causal_transformer import CausalWanTransformer, velocity_from_output
from vpt.models.kv_cache import AttentionWindow, TextCache
from vpt.models.transformer import Prediction
from vpt.sampling import sampling_sigmas
from vpt.streaming import (
    ChunkTimings,
    GenerationCancelled,
    StopCheck,
    StreamRequest,
    VideoChunk,
    split_frames,
)

NoiseFn = Callable[[tuple[int, ...]], Tensor]
"""Draws a `(B, C, F, H, W)` standard normal tensor (the rollout's only source of randomness)."""

DISTILL_STAGE = "distill"


@dataclass(frozen=True)
class StudentSettings:
    """How the causal student attends and samples (saved in its checkpoint's recipe)."""

    chunk_frames: int = 1
    """Transformer frames per chunk (each is `temporal patch` latent frames)."""
    sink_frames: int = 0
    """Frames that stay visible to every later chunk (attention sink)."""
    window_frames: int | None = None
    """Frames visible back from a chunk's end, its own included; None sees every earlier frame."""
    num_steps: int = 4
    """Denoising steps per chunk."""
    shift: float = 3.0
    """Timestep shift that warps the uniform step list [1, (K-1)/K, ..., 1/K]."""
    context_sigma: float = 0.0
    """Noise level of the cache-fill pass (0 = clean context, as in Self-Forcing)."""

    def __post_init__(self) -> None:
        if not 1 <= self.num_steps <= 50:
            raise ValueError(f"num_steps must be in 1..50, got {self.num_steps}")
        if not self.shift > 0:
            raise ValueError(f"shift must be > 0, got {self.shift}")
        if not 0.0 <= self.context_sigma < 1.0:
            raise ValueError(f"context_sigma must be in [0, 1), got {self.context_sigma}")
        self.window()  # validates the attention fields

    def window(self) -> AttentionWindow:
        return AttentionWindow(self.chunk_frames, self.sink_frames, self.window_frames)

    def sigmas(self) -> list[float]:
        """The warped step list sigma_0 = 1 > ... > sigma_{K-1} > 0 (K = num_steps)."""
        return [float(s) for s in sampling_sigmas(self.num_steps, self.shift)[:-1].tolist()]


@dataclass(frozen=True)
class DenoisedChunk:
    """One chunk of a rollout, as soon as it is denoised (before its cache-fill pass)."""

    index: int
    """Chunk number, from 0."""
    first_latent_frame: int
    """Index of the chunk's first latent frame in the video."""
    latents: Tensor
    """The chunk's clean prediction `(B, C, f, H, W)` (carries gradient at the exit step)."""
    network_evaluations: int
    """Chunk forwards of the rollout so far, this chunk's included."""


def per_seed_noise(seeds: Sequence[int], device: torch.device | str = "cpu") -> NoiseFn:
    """Noise drawn per sample from its own seed, so a video does not depend on its batch."""
    generators = [torch.Generator().manual_seed(int(seed)) for seed in seeds]

    def draw(shape: tuple[int, ...]) -> Tensor:
        if shape[0] != len(generators):
            raise ValueError(f"noise for a batch of {shape[0]} but {len(generators)} seeds")
        samples = [torch.randn(shape[1:], generator=g) for g in generators]
        return torch.stack(samples).to(device)

    return draw


def rollout_chunks(
    student: CausalWanTransformer,
    text: TextCache,
    noise: NoiseFn,
    latent_shape: tuple[int, int, int, int],
    settings: StudentSettings,
    prediction: Prediction = "velocity",
    exit_step: int | None = None,
) -> Iterator[DenoisedChunk]:
    """Generate `latent_shape = (C, F, H, W)` chunk by chunk; yield each chunk when denoised.

    Every forward runs under `no_grad` except the one at `exit_step` (default: the last step),
    which keeps gradient when the caller has it enabled and ends the chunk's sampling early, as
    Self-Forcing's stochastic gradient truncation does. The cache-fill pass after each yield
    (skipped after the last chunk) always runs without gradient.
    """
    channels, latent_frames, height, width = latent_shape
    patch = student.temporal_patch
    if latent_frames % patch:
        raise ValueError(f"{latent_frames} latent frames is not a multiple of the patch {patch}")
    sigmas = settings.sigmas()
    final_step = len(sigmas) - 1 if exit_step is None else exit_step
    if not 0 <= final_step < len(sigmas):
        raise ValueError(f"exit_step must be in 0..{len(sigmas) - 1}, got {exit_step}")
    if student.window != settings.window():
        raise ValueError("the student's attention window differs from the sampler settings")
    batch = text.batch_size
    frames = latent_frames // patch
    chunk = settings.chunk_frames
    cache = student.new_cache(height, width, max_frames=frames)
    evaluations = 0
    for index, start in enumerate(range(0, frames, chunk)):
        count = min(chunk, frames - start)
        x = noise((batch, channels, count * patch, height, width))
        clean = x
        for step, sigma in enumerate(sigmas[: final_step + 1]):
            keep_grad = step == final_step
            with contextlib.nullcontext() if keep_grad else torch.no_grad():
                sigma_BT = torch.full((batch, count), sigma, device=x.device)
                output = student(x, sigma_BT, text, frame_offset=start, cache=cache)
                velocity = velocity_from_output(output, x, sigma_BT, patch, prediction)
                clean = x - sigma * velocity
            evaluations += 1
            if step < final_step:
                sigma_next = sigmas[step + 1]
                x = (1 - sigma_next) * clean + sigma_next * noise(tuple(clean.shape))
        yield DenoisedChunk(index, start * patch, clean, evaluations)
        if start + count < frames:
            with torch.no_grad():
                context = clean.detach()
                if settings.context_sigma > 0:
                    level = settings.context_sigma
                    context = (1 - level) * context + level * noise(tuple(context.shape))
                sigma_BT = torch.full((batch, count), settings.context_sigma, device=x.device)
                student(context, sigma_BT, text, frame_offset=start, cache=cache, write_cache=True)
            evaluations += 1


@dataclass(frozen=True)
class StreamedChunk:
    """A decoded chunk of a batch of videos."""

    index: int
    """Chunk number, from 0."""
    frames: np.ndarray
    """uint8 `(B, f, H, W, 3)`."""
    first_frame: int
    """Index of the chunk's first video frame."""
    seconds: float
    """Wall time from the start of the request to this chunk being decoded."""
    denoise_seconds: float
    """Wall time of this chunk's denoising forwards (and the previous chunk's cache fill)."""
    decode_seconds: float
    """Wall time of decoding this chunk."""
    network_evaluations: int
    """Chunk forwards of the student so far, this chunk's included."""


class ARGenerator:
    """The distilled causal student with the text encoder and autoencoder of its teacher."""

    def __init__(
        self, student: CausalWanTransformer, base: Generator, settings: StudentSettings
    ) -> None:
        if not base.autoencoder.is_per_frame:
            raise ValueError(
                "streaming decodes each chunk on its own, which needs a per-frame autoencoder; "
                "a causal 3D VAE needs a decoder that carries state across chunks"
            )
        student.window = settings.window()
        self.student = student.eval()
        self.base = base
        self.settings = settings

    @property
    def config(self) -> GeneratorConfig:
        return self.base.config

    def latent_shape(self, num_frames: int | None = None) -> tuple[int, int, int, int]:
        geometry = self.base.config.geometry
        frames = num_frames or geometry.frames
        return self.base.autoencoder.latent_shape(frames, geometry.height, geometry.width)

    def text_cache(self, prompts: Sequence[str]) -> TextCache:
        with torch.no_grad():
            return self.student.encode_text(self.base.encode_prompts(prompts))

    def stream(
        self,
        prompts: Sequence[str],
        seeds: Sequence[int],
        num_frames: int | None = None,
        settings: StudentSettings | None = None,
    ) -> Iterator[StreamedChunk]:
        """Yield each decoded chunk of the videos as soon as it is ready."""
        if len(prompts) != len(seeds) or not prompts:
            raise ValueError(f"need one seed per prompt, got {len(prompts)} and {len(seeds)}")
        chosen = settings or self.settings
        if chosen.window() != self.settings.window():
            raise ValueError("sampling settings may change steps and shift, not the attention")
        started = time.perf_counter()
        text = self.text_cache(prompts)
        chunk_started = started
        chunks = rollout_chunks(
            self.student,
            text,
            per_seed_noise(seeds, self.base.device),
            self.latent_shape(num_frames),
            chosen,
            self.base.config.prediction,
        )
        while True:
            # no_grad around each step only: a `with` spanning the yield would leak into the caller.
            with torch.no_grad():
                chunk = next(chunks, None)
            if chunk is None:
                return
            denoised = time.perf_counter()
            frames = self.base.decode(chunk.latents)
            decoded = time.perf_counter()
            yield StreamedChunk(
                index=chunk.index,
                frames=frames,
                first_frame=chunk.first_latent_frame,
                seconds=decoded - started,
                denoise_seconds=denoised - chunk_started,
                decode_seconds=decoded - denoised,
                network_evaluations=chunk.network_evaluations,
            )
            chunk_started = time.perf_counter()

    def generate(
        self,
        prompts: Sequence[str],
        seeds: Sequence[int],
        sampler: SamplerSettings | None = None,
        batch_size: int = 16,
        num_frames: int | None = None,
    ) -> np.ndarray:
        """uint8 videos `(B, F, H, W, 3)`, one per (prompt, seed); `sampler` may set steps/shift."""
        settings = self.settings
        if sampler is not None:
            settings = replace(settings, num_steps=sampler.num_steps, shift=sampler.shift)
        videos = []
        for start in range(0, len(prompts), batch_size):
            part = slice(start, start + batch_size)
            chunks = self.stream(prompts[part], seeds[part], num_frames, settings)
            videos.append(np.concatenate([c.frames for c in chunks], axis=1))
        return np.concatenate(videos)


class ARStreamer:
    """`vpt.streaming.StreamingGenerator` over an `ARGenerator`: one chunk as soon as it is ready.

    `request.sampler` chooses the student's steps and shift; its guidance scale must be 1 (the
    student samples without classifier-free guidance).
    """

    def __init__(self, model: ARGenerator) -> None:
        self.model = model

    @property
    def geometry(self) -> VideoGeometry:
        return self.model.base.config.geometry

    @property
    def default_sampler(self) -> SamplerSettings:
        settings = self.model.settings
        return SamplerSettings(settings.num_steps, settings.shift, guidance_scale=1.0)

    def stream(self, request: StreamRequest, should_stop: StopCheck) -> Iterator[VideoChunk]:
        sampler = request.sampler
        sampler.validate()
        if sampler.guidance_scale != 1.0:
            raise ValueError(
                f"guidance_scale {sampler.guidance_scale}: the distilled student samples "
                "without classifier-free guidance; use 1"
            )
        settings = replace(self.model.settings, num_steps=sampler.num_steps, shift=sampler.shift)
        if should_stop():
            raise GenerationCancelled("generation stopped before the first chunk")
        for chunk in self.model.stream([request.prompt], [request.seed], None, settings):
            timings = ChunkTimings(chunk.denoise_seconds, chunk.decode_seconds)
            parts = split_frames(chunk.frames[0], request.frames_per_chunk)
            for part_index, (first, frames) in enumerate(parts):
                yield VideoChunk(
                    frames=frames,
                    first_frame_index=chunk.first_frame + first,
                    timings=timings if part_index == 0 else ChunkTimings(),
                )
            if should_stop():
                raise GenerationCancelled("generation stopped between chunks")


def load_ar_generator(
    folder: str | Path, device: torch.device | str = "cpu", geometry: VideoGeometry | None = None
) -> ARGenerator:
    """Load a distilled student checkpoint (stage "distill") as an `ARGenerator`."""
    loaded = load_generator(folder, device, geometry=geometry)
    manifest = loaded.manifest
    if manifest is None or manifest.stage != DISTILL_STAGE:
        stage = manifest.stage if manifest else "none"
        raise CheckpointError(
            f"{folder} is not a distilled student (manifest stage {stage!r}, expected "
            f"{DISTILL_STAGE!r}); sample it with `vpt generate` instead"
        )
    try:
        settings = config_from_dict(
            StudentSettings, manifest.recipe.get("student", {}), "manifest.recipe.student"
        )
    except ConfigError as error:
        raise CheckpointError(f"{folder}: {error}") from None
    base = loaded.generator
    student = CausalWanTransformer.from_teacher(base.transformer, settings.window())
    return ARGenerator(student, base, settings)

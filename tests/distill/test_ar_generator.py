"""The streaming few-step sampler of the causal student on a tiny real generator."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.tiny_models import tiny_generator
from vpt.ar_generator import ARGenerator, ARStreamer, StudentSettings, rollout_chunks
from vpt.generator import SamplerSettings
from vpt.models.causal_transformer import CausalWanTransformer
from vpt.streaming import GenerationCancelled, StreamRequest

SETTINGS = StudentSettings(chunk_frames=1, num_steps=3, shift=3.0)
PROMPTS = ["a red circle moving left", "a small blue square going up"]


@pytest.fixture(scope="module")
def model() -> ARGenerator:
    base = tiny_generator()
    student = CausalWanTransformer.from_teacher(base.transformer, SETTINGS.window())
    return ARGenerator(student, base, SETTINGS)


def test_student_sigmas_are_the_shift_warped_uniform_steps() -> None:
    # shift 3 maps s to 3s / (1 + 2s): [1, 3/4, 1/2, 1/4] -> [1, 0.9, 0.75, 0.5]
    sigmas = StudentSettings(num_steps=4, shift=3.0).sigmas()
    assert sigmas == pytest.approx([1.0, 0.9, 0.75, 0.5], abs=1e-7)


def test_seeded_rollouts_are_deterministic_and_batch_independent(model: ARGenerator) -> None:
    first = model.generate(PROMPTS, [3, 4])
    again = model.generate(PROMPTS, [3, 4])
    alone = model.generate(PROMPTS[1:], [4])
    other_seed = model.generate(PROMPTS[1:], [5])
    assert first.shape == (2, 4, 16, 16, 3) and first.dtype == np.uint8
    assert np.array_equal(first, again)
    assert np.array_equal(first[1], alone[0])
    assert not np.array_equal(alone, other_seed)


def test_stream_yields_each_chunk_before_its_cache_fill(model: ARGenerator) -> None:
    stream = model.stream(PROMPTS[:1], [0], num_frames=8)
    chunks = list(stream)
    steps = SETTINGS.num_steps
    assert [c.index for c in chunks] == [0, 1, 2, 3]
    assert [c.first_frame for c in chunks] == [0, 2, 4, 6]
    # chunk i: i earlier chunks of (steps + one fill) + its own steps; no fill counted yet
    assert [c.network_evaluations for c in chunks] == [i * (steps + 1) + steps for i in range(4)]
    assert all(c.frames.shape == (1, 2, 16, 16, 3) for c in chunks)
    assert all(c.seconds > 0 and c.decode_seconds >= 0 for c in chunks)
    whole = model.generate(PROMPTS[:1], [0], num_frames=8)
    assert np.array_equal(np.concatenate([c.frames for c in chunks], axis=1), whole)
    assert torch.is_grad_enabled()  # the stream does not leak no_grad into its caller


def test_rollout_keeps_gradient_only_at_the_exit_step(model: ARGenerator) -> None:
    student = model.student
    text = student.encode_text(model.base.encode_prompts(PROMPTS))

    def noise(shape: tuple[int, ...]) -> torch.Tensor:
        return torch.randn(shape, generator=torch.Generator().manual_seed(0))

    chunks = list(rollout_chunks(student, text, noise, (4, 4, 8, 8), SETTINGS, exit_step=1))
    assert [c.network_evaluations for c in chunks] == [2, 5]  # 2 steps, fill, 2 steps
    assert all(c.latents.requires_grad for c in chunks)
    with torch.no_grad():
        frozen = list(rollout_chunks(student, text, noise, (4, 4, 8, 8), SETTINGS, exit_step=1))
    assert not any(c.latents.requires_grad for c in frozen)
    with pytest.raises(ValueError, match="exit_step"):
        next(rollout_chunks(student, text, noise, (4, 4, 8, 8), SETTINGS, exit_step=3))


def test_streamer_implements_the_streaming_protocol(model: ARGenerator) -> None:
    streamer = ARStreamer(model)
    request = StreamRequest(PROMPTS[0], seed=7, sampler=streamer.default_sampler)
    chunks = list(streamer.stream(request, lambda: False))
    assert [c.first_frame_index for c in chunks] == [0, 2]
    video = np.concatenate([c.frames for c in chunks])
    assert np.array_equal(video, model.generate(PROMPTS[:1], [7])[0])
    assert chunks[0].timings.denoise_seconds > 0

    with pytest.raises(ValueError, match="without classifier-free guidance"):
        guided = StreamRequest(PROMPTS[0], 7, SamplerSettings(3, 3.0, guidance_scale=4.0))
        next(streamer.stream(guided, lambda: False))

    calls = iter([False, True])
    cancelled = streamer.stream(request, lambda: next(calls))
    next(cancelled)
    with pytest.raises(GenerationCancelled):
        next(cancelled)

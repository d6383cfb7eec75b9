"""Known answers for the causal student: teacher weights, block-causal attention, KV cache."""

from __future__ import annotations

import pytest
import torch

from tests.distill.tiny_causal import tiny_student, tiny_teacher
from vpt.models.causal_transformer import CausalWanTransformer
from vpt.models.kv_cache import AttentionWindow

FRAMES, HEIGHT, WIDTH = 7, 4, 6


def inputs(batch: int = 2, frames: int = FRAMES, seed: int = 1):
    generator = torch.Generator().manual_seed(seed)
    latents = torch.randn(batch, 4, frames, HEIGHT, WIDTH, generator=generator)
    text = torch.randn(batch, 5, 16, generator=generator)
    sigma = torch.rand(batch, frames, generator=generator)
    return latents, text, sigma


def test_student_loads_the_teacher_state_dict_strictly() -> None:
    teacher = tiny_teacher()
    student = CausalWanTransformer.from_config(teacher.config)
    student.load_state_dict(teacher.state_dict(), strict=True)
    assert list(student.state_dict()) == list(teacher.state_dict())
    copied = CausalWanTransformer.from_teacher(teacher, AttentionWindow())
    for name, value in teacher.state_dict().items():
        assert torch.equal(copied.state_dict()[name], value), name
    plain = copied.to_bidirectional()
    assert type(plain).__name__ == "WanTransformer3DModel"
    assert all(torch.equal(plain.state_dict()[k], v) for k, v in teacher.state_dict().items())


def test_one_chunk_over_all_frames_is_the_bidirectional_teacher() -> None:
    teacher = tiny_teacher()
    student = CausalWanTransformer.from_teacher(teacher, AttentionWindow(chunk_frames=FRAMES))
    latents, text, sigma = inputs()
    sigma_B = sigma[:, 0]
    with torch.no_grad():
        expected = teacher(
            hidden_states=latents,
            timestep=sigma_B * 1000,
            encoder_hidden_states=text,
            return_dict=False,
        )[0]
        got = student(latents, sigma_B[:, None].expand(-1, FRAMES), student.encode_text(text))
    assert (got - expected).abs().max() < 1e-5


WINDOWS = [
    AttentionWindow(chunk_frames=1),
    AttentionWindow(chunk_frames=3),
    AttentionWindow(chunk_frames=1, sink_frames=1, window_frames=2),
    AttentionWindow(chunk_frames=3, sink_frames=1, window_frames=4),
    AttentionWindow(chunk_frames=2, window_frames=4),
]


@pytest.mark.parametrize("window", WINDOWS, ids=str)
def test_chunk_by_chunk_with_the_cache_equals_the_masked_forward(window: AttentionWindow) -> None:
    student = tiny_student(window)
    latents, text, sigma = inputs()
    with torch.no_grad():
        text_cache = student.encode_text(text)
        full = student(latents, sigma, text_cache)
        cache = student.new_cache(HEIGHT, WIDTH)
        chunks = []
        for start in range(0, FRAMES, window.chunk_frames):
            end = min(start + window.chunk_frames, FRAMES)
            chunks.append(
                student(
                    latents[:, :, start:end],
                    sigma[:, start:end],
                    text_cache,
                    frame_offset=start,
                    cache=cache,
                    write_cache=True,
                )
            )
    difference = (torch.cat(chunks, dim=2) - full).abs().max()
    assert difference < 1e-5
    if window.window_frames is not None:
        assert len(cache.frames) <= window.sink_frames + window.window_frames


def test_masked_forward_is_block_causal() -> None:
    student = tiny_student(AttentionWindow(chunk_frames=3))
    latents, text, sigma = inputs()
    changed = latents.clone()
    changed[:, :, 4] += 1.0  # a frame of the second chunk
    with torch.no_grad():
        text_cache = student.encode_text(text)
        before = student(latents, sigma, text_cache)
        after = student(changed, sigma, text_cache)
    assert torch.equal(before[:, :, :3], after[:, :, :3])
    assert (before[:, :, 3:6] - after[:, :, 3:6]).abs().max() > 1e-3


def test_rope_starts_at_the_absolute_frame() -> None:
    student = tiny_student(AttentionWindow(chunk_frames=1))
    cos_full, _ = student.rotary_at(0, 3, HEIGHT, WIDTH)
    cos_last, _ = student.rotary_at(2, 1, HEIGHT, WIDTH)
    tokens = (HEIGHT // 2) * (WIDTH // 2)
    assert torch.equal(cos_last, cos_full[:, 2 * tokens :])
    expected, _ = student.rope(torch.zeros(1, 4, 3, HEIGHT, WIDTH))
    assert torch.equal(cos_full, expected)
    with pytest.raises(ValueError, match="rotary table"):
        student.rotary_at(30, 3, HEIGHT, WIDTH)


def test_rerunning_a_chunk_overwrites_its_cache_entries() -> None:
    window = AttentionWindow(chunk_frames=2)
    student = tiny_student(window)
    latents, text, sigma = inputs(frames=4)
    other = torch.randn_like(latents[:, :, :2])
    with torch.no_grad():
        text_cache = student.encode_text(text)
        cache = student.new_cache(HEIGHT, WIDTH)
        student(other, sigma[:, :2], text_cache, cache=cache, write_cache=True)
        student(latents[:, :, :2], sigma[:, :2], text_cache, cache=cache, write_cache=True)
        assert cache.frames == [0, 1]
        assert cache.stored_tokens() == 2 * student.tokens_per_frame(HEIGHT, WIDTH)
        rerun = student(latents[:, :, 2:], sigma[:, 2:], text_cache, frame_offset=2, cache=cache)
        fresh = student.new_cache(HEIGHT, WIDTH)
        student(latents[:, :, :2], sigma[:, :2], text_cache, cache=fresh, write_cache=True)
        once = student(latents[:, :, 2:], sigma[:, 2:], text_cache, frame_offset=2, cache=fresh)
    assert torch.equal(rerun, once)


def test_no_gradient_reaches_earlier_chunks_through_the_cache() -> None:
    student = tiny_student(AttentionWindow(chunk_frames=1))
    latents, text, sigma = inputs(frames=2)
    first = latents[:, :, :1].clone().requires_grad_(True)
    text_cache = student.encode_text(text)
    cache = student.new_cache(HEIGHT, WIDTH)
    student(first, sigma[:, :1], text_cache, cache=cache, write_cache=True)
    second = latents[:, :, 1:].clone().requires_grad_(True)
    output = student(second, sigma[:, 1:], text_cache, frame_offset=1, cache=cache)
    output.square().sum().backward()
    assert first.grad is None
    assert second.grad is not None and second.grad.abs().sum() > 0
    context = cache.context(0, 1, 2)
    assert context is not None and not context[0].requires_grad


def test_bad_inputs_are_refused_with_the_reason() -> None:
    student = tiny_student(AttentionWindow(chunk_frames=2))
    latents, text, sigma = inputs(frames=4)
    text_cache = student.encode_text(text)
    with pytest.raises(ValueError, match="one value per transformer frame"):
        student(latents, sigma[:, :3], text_cache)
    with pytest.raises(ValueError, match="must be one chunk"):
        student(
            latents[:, :, 1:3],
            sigma[:, 1:3],
            text_cache,
            frame_offset=1,
            cache=student.new_cache(HEIGHT, WIDTH),
        )
    with pytest.raises(ValueError, match="prompts for a batch"):
        student(latents[:1], sigma[:1], text_cache)

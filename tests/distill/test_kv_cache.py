"""The block-causal attention pattern and the KV cache's bookkeeping (known answers)."""

from __future__ import annotations

import pytest
import torch

from vpt.models.kv_cache import AttentionWindow, KVCache, block_causal_frame_mask, block_causal_mask


def as_rows(mask: torch.Tensor) -> list[str]:
    return ["".join("1" if v else "." for v in row) for row in mask.tolist()]


def test_chunk_size_1_is_frame_causal() -> None:
    mask = block_causal_frame_mask(4, AttentionWindow(chunk_frames=1))
    assert as_rows(mask) == ["1...", "11..", "111.", "1111"]


def test_chunk_size_3_sees_its_whole_chunk_and_earlier_chunks() -> None:
    mask = block_causal_frame_mask(7, AttentionWindow(chunk_frames=3))
    assert as_rows(mask) == [
        "111....",
        "111....",
        "111....",
        "111111.",
        "111111.",
        "111111.",
        "1111111",  # the last, partial chunk
    ]


def test_chunk_size_1_with_sink_and_window() -> None:
    mask = block_causal_frame_mask(
        5, AttentionWindow(chunk_frames=1, sink_frames=1, window_frames=2)
    )
    assert as_rows(mask) == ["1....", "11...", "111..", "1.11.", "1..11"]


def test_chunk_size_3_with_sink_and_window() -> None:
    window = AttentionWindow(chunk_frames=3, sink_frames=1, window_frames=4)
    mask = block_causal_frame_mask(9, window)
    assert as_rows(mask) == [
        "111......",
        "111......",
        "111......",
        "1.1111...",
        "1.1111...",
        "1.1111...",
        "1....1111",
        "1....1111",
        "1....1111",
    ]


def test_token_mask_repeats_the_frame_mask_per_token() -> None:
    window = AttentionWindow(chunk_frames=1)
    mask = block_causal_mask(3, 2, window)
    assert mask.shape == (6, 6)
    assert as_rows(mask) == ["11....", "11....", "1111..", "1111..", "111111", "111111"]


def test_window_smaller_than_a_chunk_is_refused() -> None:
    with pytest.raises(ValueError, match="window_frames"):
        AttentionWindow(chunk_frames=3, window_frames=2)


def _write(cache: KVCache, frame: int, value: float) -> None:
    keys = torch.full((1, cache.tokens_per_frame, 1, 2), value)
    cache.begin_write(frame, 1)
    cache.write(0, frame, keys, keys)


def test_rolling_cache_keeps_sinks_and_evicts_frames_outside_every_window() -> None:
    window = AttentionWindow(chunk_frames=1, sink_frames=1, window_frames=2)
    cache = KVCache(num_layers=1, tokens_per_frame=2, window=window, max_frames=64)
    assert cache.capacity_frames == 3
    for frame in range(6):
        _write(cache, frame, float(frame))
    assert cache.frames == [0, 4, 5]
    context = cache.context(0, 6, 7)  # the next chunk sees the sink and frame 5
    assert context is not None
    assert context[0][0, :, 0, 0].tolist() == [0.0, 0.0, 5.0, 5.0]


def test_writing_past_the_end_is_refused() -> None:
    cache = KVCache(1, 2, AttentionWindow(), max_frames=8)
    _write(cache, 0, 0.0)
    with pytest.raises(ValueError, match="gap"):
        cache.begin_write(2, 1)


def test_rewriting_a_frame_overwrites_its_slot() -> None:
    cache = KVCache(1, 2, AttentionWindow(), max_frames=8)
    _write(cache, 0, 1.0)
    _write(cache, 1, 2.0)
    _write(cache, 1, 3.0)
    assert cache.frames == [0, 1]
    assert cache.stored_tokens() == 4
    context = cache.context(0, 2, 3)
    assert context is not None
    assert context[0][0, :, 0, 0].tolist() == [1.0, 1.0, 3.0, 3.0]


def test_missing_context_frames_are_reported() -> None:
    cache = KVCache(1, 2, AttentionWindow(), max_frames=8)
    with pytest.raises(ValueError, match="needs frames"):
        cache.context(0, 1, 2)

"""Block-causal attention pattern and the per-layer key/value caches of the causal student.

The pattern (CausVid, Yin et al., arXiv 2412.07772, section 4.1; Self-Forcing, Huang et al.,
arXiv 2506.08009, section 3): latent frames are grouped into chunks of `chunk_frames`; a token
sees every token of its own chunk and of earlier chunks. Optionally the first `sink_frames`
frames stay visible forever ("attention sink") and other past frames only within a rolling
window of the `window_frames` most recent frames, counted back from the end of the query's
chunk (Self-Forcing's `local_attn_size`), so a video can run longer than the training length:

    visible(q, k) = chunk(k) <= chunk(q)  and  (frame(k) < sink  or  frame(k) >= end(q) - window)

A "frame" here is one latent-token frame: with a temporal patch of p the transformer's frame is
p latent frames.

`KVCache` holds, for each transformer layer, the keys (rotary embedding already applied at the
frame's absolute position) and values of past frames, in a preallocated buffer with one slot
per frame. Writing a frame that is already stored overwrites its slot (re-running a chunk, e.g.
the clean cache-fill pass after the denoising steps); frames that no future chunk can see are
evicted. Stored tensors are detached: no gradient flows into earlier chunks through the cache.

`TextCache` holds each layer's cross-attention keys and values of the prompt, computed once.

Shape legend: B batch, N stored tokens, H heads, D head width, L text tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class AttentionWindow:
    """Which earlier frames a chunk of the causal student attends to."""

    chunk_frames: int = 1
    """Transformer frames (latent frames / temporal patch) generated together as one chunk."""
    sink_frames: int = 0
    """The first this-many frames stay visible to every later chunk."""
    window_frames: int | None = None
    """Frames visible back from the end of a chunk (its own included); None sees all of them."""

    def __post_init__(self) -> None:
        if self.chunk_frames < 1:
            raise ValueError(f"chunk_frames must be >= 1, got {self.chunk_frames}")
        if self.sink_frames < 0:
            raise ValueError(f"sink_frames must be >= 0, got {self.sink_frames}")
        if self.window_frames is not None and self.window_frames < self.chunk_frames:
            raise ValueError(
                f"window_frames ({self.window_frames}) must be >= chunk_frames "
                f"({self.chunk_frames}) so a chunk sees itself, or None for no window"
            )

    def chunk_end(self, frame: int, num_frames: int) -> int:
        """One past the last frame of the chunk holding `frame` in a video of `num_frames`."""
        return min((frame // self.chunk_frames + 1) * self.chunk_frames, num_frames)

    def is_visible(self, key_frame: int, query_end: int) -> bool:
        """Whether a past (or same-chunk) frame is visible to a chunk ending at `query_end`."""
        if key_frame >= query_end:
            return False
        if key_frame < self.sink_frames or self.window_frames is None:
            return True
        return key_frame >= query_end - self.window_frames


def block_causal_frame_mask(num_frames: int, window: AttentionWindow) -> Tensor:
    """`(num_frames, num_frames)` bool: entry [q, k] is True where frame q may attend to frame k."""
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    mask = torch.zeros(num_frames, num_frames, dtype=torch.bool)
    for query in range(num_frames):
        end = window.chunk_end(query, num_frames)
        for key in range(num_frames):
            mask[query, key] = window.is_visible(key, end)
    return mask


def block_causal_mask(num_frames: int, tokens_per_frame: int, window: AttentionWindow) -> Tensor:
    """The token-level mask `(L, L)`, L = num_frames * tokens_per_frame (frame-major tokens)."""
    if tokens_per_frame < 1:
        raise ValueError(f"tokens_per_frame must be >= 1, got {tokens_per_frame}")
    frame_mask = block_causal_frame_mask(num_frames, window)
    return frame_mask.repeat_interleave(tokens_per_frame, 0).repeat_interleave(tokens_per_frame, 1)


class KVCache:
    """Self-attention keys (RoPE at absolute frame positions) and values of stored frames.

    One cache serves one rollout (one batch of videos). `context(layer, start, end)` returns the
    keys and values of stored frames before `start` that a chunk [start, end) may see;
    `write(layer, start, keys, values)` stores a chunk's frames (overwriting them if present).
    The buffer is allocated on the first write, with room for `sink + window` frames (or
    `max_frames` without a window).
    """

    def __init__(
        self, num_layers: int, tokens_per_frame: int, window: AttentionWindow, max_frames: int
    ) -> None:
        if num_layers < 1 or tokens_per_frame < 1 or max_frames < 1:
            raise ValueError(
                "KVCache needs num_layers, tokens_per_frame and max_frames >= 1, got "
                f"{num_layers}, {tokens_per_frame}, {max_frames}"
            )
        self.num_layers = num_layers
        self.tokens_per_frame = tokens_per_frame
        self.window = window
        self.max_frames = max_frames
        span = window.sink_frames + window.window_frames if window.window_frames else max_frames
        self.capacity_frames = min(span, max_frames)
        self.slot_of_frame: dict[int, int] = {}
        """Absolute frame index -> slot in the buffers (the same for every layer)."""
        self._keys: list[Tensor | None] = [None] * num_layers
        self._values: list[Tensor | None] = [None] * num_layers
        self._pending: tuple[int, int] | None = None

    @property
    def frames(self) -> list[int]:
        """Absolute indices of the stored frames, ascending."""
        return sorted(self.slot_of_frame)

    @property
    def next_frame(self) -> int:
        """The frame after the last stored one (0 when empty)."""
        return max(self.slot_of_frame) + 1 if self.slot_of_frame else 0

    def reset(self) -> None:
        """Forget every stored frame (the buffers are kept for reuse)."""
        self.slot_of_frame.clear()
        self._pending = None

    def visible_frames(self, start: int, end: int) -> list[int]:
        """Stored frames before `start` that a chunk [start, end) attends to, ascending."""
        return [f for f in self.frames if f < start and self.window.is_visible(f, end)]

    def context(self, layer: int, start: int, end: int) -> tuple[Tensor, Tensor] | None:
        """Keys and values `(B, N, H, D)` of the visible stored frames (None if none)."""
        frames = self.visible_frames(start, end)
        missing = [f for f in range(start) if self.window.is_visible(f, end) and f not in frames]
        if missing:
            raise ValueError(
                f"chunk [{start}, {end}) needs frames {missing} in the KV cache, which holds "
                f"{self.frames}; fill the cache chunk by chunk from frame 0"
            )
        keys, values = self._keys[layer], self._values[layer]
        if not frames or keys is None or values is None:
            return None
        index = self._token_index([self.slot_of_frame[f] for f in frames], keys.device)
        return keys.index_select(1, index), values.index_select(1, index)

    def begin_write(self, start: int, num_frames: int) -> None:
        """Reserve slots for frames [start, start + num_frames); evict frames no chunk will see."""
        end = start + num_frames
        if start > self.next_frame:
            raise ValueError(
                f"cannot write frames [{start}, {end}): the cache ends at frame "
                f"{self.next_frame}, writing would leave a gap"
            )
        for frame in self.frames:
            # Frames outside the window of this chunk are outside every later chunk's window.
            if frame < start and not self.window.is_visible(frame, end):
                del self.slot_of_frame[frame]
        used = set(self.slot_of_frame.values())
        free = [slot for slot in range(self.capacity_frames) if slot not in used]
        for frame in range(start, end):
            if frame not in self.slot_of_frame:
                if not free:
                    raise ValueError(
                        f"KV cache full ({self.capacity_frames} frames) writing frame {frame}; "
                        "use a window (window_frames) for videos longer than max_frames"
                    )
                self.slot_of_frame[frame] = free.pop(0)
        self._pending = (start, end)

    def write(self, layer: int, start: int, keys: Tensor, values: Tensor) -> None:
        """Store detached keys and values `(B, n * tokens_per_frame, H, D)` from frame `start`."""
        if self._pending is None or self._pending[0] != start:
            raise RuntimeError("call begin_write(start, num_frames) before writing layers")
        num_frames = self._pending[1] - start
        if keys.shape[1] != num_frames * self.tokens_per_frame or keys.shape != values.shape:
            raise ValueError(
                f"keys {tuple(keys.shape)} / values {tuple(values.shape)} do not hold "
                f"{num_frames} frames of {self.tokens_per_frame} tokens"
            )
        if self._keys[layer] is None:
            batch, _, heads, width = keys.shape
            shape = (batch, self.capacity_frames * self.tokens_per_frame, heads, width)
            self._keys[layer] = keys.new_zeros(shape)
            self._values[layer] = values.new_zeros(shape)
        buffer_keys, buffer_values = self._keys[layer], self._values[layer]
        assert buffer_keys is not None and buffer_values is not None
        if buffer_keys.shape[0] != keys.shape[0] or buffer_keys.shape[2:] != keys.shape[2:]:
            raise ValueError(
                f"keys {tuple(keys.shape)} do not match the cache's batch and heads "
                f"{tuple(buffer_keys.shape)}; use a new KVCache per batch"
            )
        slots = [self.slot_of_frame[f] for f in range(start, start + num_frames)]
        index = self._token_index(slots, keys.device)
        with torch.no_grad():
            buffer_keys.index_copy_(1, index, keys.detach().to(buffer_keys.dtype))
            buffer_values.index_copy_(1, index, values.detach().to(buffer_values.dtype))

    def stored_tokens(self) -> int:
        """Tokens currently held (per layer)."""
        return len(self.slot_of_frame) * self.tokens_per_frame

    def _token_index(self, slots: list[int], device: torch.device) -> Tensor:
        per_frame = torch.arange(self.tokens_per_frame, device=device)
        starts = torch.tensor(slots, device=device) * self.tokens_per_frame
        return (starts[:, None] + per_frame[None, :]).flatten()


@dataclass(frozen=True)
class TextCache:
    """Each layer's cross-attention keys and values `(B, L, H, D)` for a batch of prompts."""

    keys: tuple[Tensor, ...]
    values: tuple[Tensor, ...]

    @property
    def batch_size(self) -> int:
        return int(self.keys[0].shape[0])

    def select(self, index: Tensor) -> TextCache:
        """The cache of a subset (or repetition) of the prompts, by batch index."""
        return TextCache(
            tuple(k.index_select(0, index) for k in self.keys),
            tuple(v.index_select(0, index) for v in self.values),
        )

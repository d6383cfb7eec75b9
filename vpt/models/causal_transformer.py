"""The causal, chunked student: diffusers' Wan transformer with block-causal self-attention.

Self-Forcing (Huang et al., arXiv 2506.08009) and CausVid (Yin et al., arXiv 2412.07772) turn
a bidirectional Wan2.1 transformer into an autoregressive one without new weights:
`CausalWanTransformer` subclasses `WanTransformer3DModel` and keeps its modules, so
`student.load_state_dict(teacher.state_dict(), strict=True)` works, and changes only how the
blocks are run:

- self-attention is block-causal over chunks of frames (`vpt.models.kv_cache`), with an
  optional attention sink and rolling window;
- every frame has its own timestep (one AdaLN modulation per frame), so clean context and a
  noisy chunk can share one sequence (Self-Forcing's `[B, F]` timesteps);
- rotary embeddings start at the chunk's absolute frame (`frame_offset`), and a `KVCache`
  stores keys with that embedding already applied, so chunk-by-chunk inference equals the full
  masked forward;
- the prompt's cross-attention keys and values are computed once per prompt (`TextCache`).

Two ways to call it: the full masked forward over all frames (`cache=None`, used for ODE
initialisation and as the reference), and chunk mode (`cache=KVCache`), where the input is one
chunk at `frame_offset` that attends to the cached frames and itself, and `write_cache=True`
stores its keys and values.

A "frame" is one transformer frame (latent frames / temporal patch size). The network output is
what the teacher was trained to predict (velocity or clean sample); `velocity_from_output`
converts it like `vpt.models.transformer.predict_velocity`, with one sigma per frame.

Shape legend: B batch, C latent channels, F latent frames, T transformer frames, H/W latent
height/width, S tokens per transformer frame, N tokens (T * S), D model width, L text tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from diffusers import WanTransformer3DModel
from torch import Tensor

from vpt.models.kv_cache import AttentionWindow, KVCache, TextCache, block_causal_mask
from vpt.models.transformer import MIN_SIGMA_FOR_SAMPLE_PREDICTION, TIMESTEP_SCALE, Prediction


class CausalWanTransformer(WanTransformer3DModel):
    """A Wan transformer run block-causally, chunk by chunk, with a KV cache."""

    window: AttentionWindow = AttentionWindow()
    """The causal attention pattern (not part of the diffusers config; set by from_teacher)."""

    @classmethod
    def from_teacher(
        cls, teacher: WanTransformer3DModel, window: AttentionWindow
    ) -> CausalWanTransformer:
        """A student with the teacher's config and (strictly loaded) weights."""
        student = cls.from_config(teacher.config)
        student.load_state_dict(teacher.state_dict(), strict=True)
        student.window = window
        return student.to(next(teacher.parameters()).device)

    def to_bidirectional(self) -> WanTransformer3DModel:
        """A plain `WanTransformer3DModel` with these weights (what checkpoints store)."""
        plain = WanTransformer3DModel.from_config(self.config)
        plain.load_state_dict(self.state_dict(), strict=True)
        return plain.to(next(self.parameters()).device)

    # -- geometry ------------------------------------------------------------------------------

    @property
    def temporal_patch(self) -> int:
        return int(self.config.patch_size[0])

    def tokens_per_frame(self, height: int, width: int) -> int:
        _, patch_h, patch_w = self.config.patch_size
        return (height // patch_h) * (width // patch_w)

    def new_cache(self, height: int, width: int, max_frames: int | None = None) -> KVCache:
        """An empty KV cache for videos of latent size `height x width`."""
        limit = max_frames or int(self.config.rope_max_seq_len)
        return KVCache(len(self.blocks), self.tokens_per_frame(height, width), self.window, limit)

    # -- conditioning --------------------------------------------------------------------------

    def encode_text(self, text_BLD: Tensor) -> TextCache:
        """Cross-attention keys and values of every layer, computed once per prompt batch."""
        if self.config.added_kv_proj_dim is not None:
            raise ValueError("image-conditioned Wan models (added_kv_proj_dim) are not supported")
        projected = self.condition_embedder.text_embedder(text_BLD)
        keys, values = [], []
        for block in self.blocks:
            attention = block.attn2
            keys.append(
                attention.norm_k(attention.to_k(projected)).unflatten(2, (attention.heads, -1))
            )
            values.append(attention.to_v(projected).unflatten(2, (attention.heads, -1)))
        return TextCache(tuple(keys), tuple(values))

    def _time_embedding(self, sigma_BT: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        """Per-frame embedding `(B, T, D)` and block modulation `(B, T, 6, D)`."""
        embedder = self.condition_embedder
        batch, frames = sigma_BT.shape
        timestep = embedder.timesteps_proj(sigma_BT.flatten().float() * TIMESTEP_SCALE)
        time_dtype = next(iter(embedder.time_embedder.parameters())).dtype
        temb = embedder.time_embedder(timestep.to(time_dtype)).to(dtype)
        modulation = embedder.time_proj(embedder.act_fn(temb))
        return (
            temb.view(batch, frames, -1),
            modulation.view(batch, frames, 6, -1),
        )

    def rotary_at(
        self, frame_offset: int, frames: int, height: int, width: int
    ) -> tuple[Tensor, Tensor]:
        """Wan's 3D rotary table `(1, N, 1, head_dim)` for frames starting at `frame_offset`."""
        rope = self.rope
        if frame_offset < 0 or frame_offset + frames > rope.max_seq_len:
            raise ValueError(
                f"frames [{frame_offset}, {frame_offset + frames}) exceed the rotary table of "
                f"{rope.max_seq_len} positions (rope_max_seq_len); generate fewer chunks"
            )
        _, patch_h, patch_w = self.config.patch_size
        rows, cols = height // patch_h, width // patch_w
        split = [rope.t_dim, rope.h_dim, rope.w_dim]
        tables = []
        for freqs in (rope.freqs_cos, rope.freqs_sin):
            table_t, table_h, table_w = freqs.split(split, dim=1)
            along_t = table_t[frame_offset : frame_offset + frames].view(frames, 1, 1, -1)
            along_h = table_h[:rows].view(1, rows, 1, -1)
            along_w = table_w[:cols].view(1, 1, cols, -1)
            grid = torch.cat(
                [
                    along_t.expand(frames, rows, cols, -1),
                    along_h.expand(frames, rows, cols, -1),
                    along_w.expand(frames, rows, cols, -1),
                ],
                dim=-1,
            )
            tables.append(grid.reshape(1, frames * rows * cols, 1, -1))
        return tables[0], tables[1]

    # -- forward -------------------------------------------------------------------------------

    def forward(  # type: ignore[override]
        self,
        latents_BCFHW: Tensor,
        sigma_BT: Tensor,
        text: TextCache,
        *,
        frame_offset: int = 0,
        cache: KVCache | None = None,
        write_cache: bool = False,
    ) -> Tensor:
        """The network output `(B, C, F, H, W)` for frames starting at `frame_offset`.

        `sigma_BT` holds one noise level per transformer frame. Without a cache the frames
        attend block-causally among themselves; with one, the input must be one chunk (aligned
        to `window.chunk_frames`), which attends to the cached frames and to itself, and
        `write_cache` stores its keys and values.
        """
        batch, _, latent_frames, height, width = latents_BCFHW.shape
        patch_t, patch_h, patch_w = self.config.patch_size
        frames = latent_frames // patch_t
        self._check_inputs(latents_BCFHW, sigma_BT, text, frame_offset, frames, cache)
        tokens_per_frame = self.tokens_per_frame(height, width)

        rotary = self.rotary_at(frame_offset, frames, height, width)
        hidden = self.patch_embedding(latents_BCFHW).flatten(2).transpose(1, 2).contiguous()
        temb_BTD, modulation_BT6D = self._time_embedding(sigma_BT, hidden.dtype)

        mask: Tensor | None = None
        if cache is None:
            mask = block_causal_mask(frames, tokens_per_frame, self._shifted_window(frame_offset))
            mask = mask.to(hidden.device)
        elif write_cache:
            cache.begin_write(frame_offset, frames)
        span = (frame_offset, frame_offset + frames)
        for layer, block in enumerate(self.blocks):
            hidden = self._run_block(
                block, layer, hidden, modulation_BT6D, text, rotary, mask, cache, span, write_cache
            )

        shift, scale = (self.scale_shift_table.unsqueeze(0) + temb_BTD.unsqueeze(2)).chunk(2, 2)
        per_frame = hidden.unflatten(1, (frames, tokens_per_frame))
        per_frame = (self.norm_out(per_frame.float()) * (1 + scale) + shift).type_as(hidden)
        hidden = self.proj_out(per_frame.flatten(1, 2))
        hidden = hidden.reshape(
            batch, frames, height // patch_h, width // patch_w, patch_t, patch_h, patch_w, -1
        )
        hidden = hidden.permute(0, 7, 1, 4, 2, 5, 3, 6)
        return hidden.flatten(6, 7).flatten(4, 5).flatten(2, 3)

    def _shifted_window(self, frame_offset: int) -> AttentionWindow:
        """The window as seen from frame `frame_offset` (the masked forward's frame 0)."""
        if frame_offset == 0:
            return self.window
        if frame_offset % self.window.chunk_frames or self.window.sink_frames:
            raise ValueError(
                "a masked forward that does not start at frame 0 must start at a chunk boundary "
                "and use no sink frames"
            )
        return self.window

    def _check_inputs(
        self,
        latents_BCFHW: Tensor,
        sigma_BT: Tensor,
        text: TextCache,
        frame_offset: int,
        frames: int,
        cache: KVCache | None,
    ) -> None:
        if latents_BCFHW.ndim != 5:
            raise ValueError(f"latents must be (B, C, F, H, W), got {tuple(latents_BCFHW.shape)}")
        batch, _, latent_frames, _, _ = latents_BCFHW.shape
        if latent_frames % self.temporal_patch or frames < 1:
            raise ValueError(
                f"{latent_frames} latent frames is not a positive multiple of the temporal patch "
                f"{self.temporal_patch}"
            )
        if sigma_BT.shape != (batch, frames):
            raise ValueError(
                f"sigma must have one value per transformer frame, shape ({batch}, {frames}), "
                f"got {tuple(sigma_BT.shape)}"
            )
        if text.batch_size != batch:
            raise ValueError(f"text cache holds {text.batch_size} prompts for a batch of {batch}")
        if cache is not None:
            chunk = self.window.chunk_frames
            if frame_offset % chunk or frames > chunk:
                raise ValueError(
                    f"with a KV cache the input must be one chunk: frames [{frame_offset}, "
                    f"{frame_offset + frames}) do not fit a chunk of {chunk} frames"
                )
            if cache.window != self.window:
                raise ValueError("the KV cache was made for a different attention window")

    def _run_block(
        self,
        block: Any,
        layer: int,
        hidden_BND: Tensor,
        modulation_BT6D: Tensor,
        text: TextCache,
        rotary: tuple[Tensor, Tensor],
        mask: Tensor | None,
        cache: KVCache | None,
        span: tuple[int, int],
        write_cache: bool,
    ) -> Tensor:
        """`WanTransformerBlock.forward` with per-frame modulation and the causal attention."""
        frames = modulation_BT6D.shape[1]
        table = block.scale_shift_table.view(1, 1, 6, -1)
        (
            shift_msa,
            scale_msa,
            gate_msa,
            c_shift_msa,
            c_scale_msa,
            c_gate_msa,
        ) = (table + modulation_BT6D.float()).unbind(2)

        def per_frame(x: Tensor) -> Tensor:
            return x.unflatten(1, (frames, -1))

        def modulate(x: Tensor, scale: Tensor, shift: Tensor) -> Tensor:
            return (per_frame(x) * (1 + scale[:, :, None]) + shift[:, :, None]).flatten(1, 2)

        def gated(x: Tensor, update: Tensor, gate: Tensor) -> Tensor:
            return (per_frame(x.float()) + per_frame(update) * gate[:, :, None]).flatten(1, 2)

        normed = modulate(block.norm1(hidden_BND.float()), scale_msa, shift_msa)
        attended = self._self_attention(
            block.attn1, layer, normed.type_as(hidden_BND), rotary, mask, cache, span, write_cache
        )
        hidden_BND = gated(hidden_BND, attended, gate_msa).type_as(hidden_BND)

        normed = block.norm2(hidden_BND.float()).type_as(hidden_BND)
        hidden_BND = hidden_BND + _cross_attention(block.attn2, normed, text, layer)

        normed = modulate(block.norm3(hidden_BND.float()), c_scale_msa, c_shift_msa)
        feed_forward = block.ffn(normed.type_as(hidden_BND))
        return gated(hidden_BND, feed_forward.float(), c_gate_msa).type_as(hidden_BND)

    def _self_attention(
        self,
        attention: Any,
        layer: int,
        hidden_BND: Tensor,
        rotary: tuple[Tensor, Tensor],
        mask: Tensor | None,
        cache: KVCache | None,
        span: tuple[int, int],
        write_cache: bool,
    ) -> Tensor:
        heads = attention.heads
        query = attention.norm_q(attention.to_q(hidden_BND)).unflatten(2, (heads, -1))
        key = attention.norm_k(attention.to_k(hidden_BND)).unflatten(2, (heads, -1))
        value = attention.to_v(hidden_BND).unflatten(2, (heads, -1))
        query = apply_rotary(query, *rotary)
        key = apply_rotary(key, *rotary)
        all_keys, all_values = key, value
        if cache is not None:
            past = cache.context(layer, *span)
            if past is not None:
                all_keys = torch.cat([past[0].to(key.dtype), key], dim=1)
                all_values = torch.cat([past[1].to(value.dtype), value], dim=1)
            if write_cache:
                cache.write(layer, span[0], key, value)
        output = F.scaled_dot_product_attention(
            query.transpose(1, 2),
            all_keys.transpose(1, 2),
            all_values.transpose(1, 2),
            attn_mask=mask,
        )
        output = output.transpose(1, 2).flatten(2, 3).type_as(query)
        return attention.to_out[1](attention.to_out[0](output))


def _cross_attention(attention: Any, hidden_BND: Tensor, text: TextCache, layer: int) -> Tensor:
    query = attention.norm_q(attention.to_q(hidden_BND)).unflatten(2, (attention.heads, -1))
    output = F.scaled_dot_product_attention(
        query.transpose(1, 2),
        text.keys[layer].transpose(1, 2),
        text.values[layer].transpose(1, 2),
    )
    output = output.transpose(1, 2).flatten(2, 3).type_as(query)
    return attention.to_out[1](attention.to_out[0](output))


def apply_rotary(x_BNHD: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Wan's interleaved rotary embedding (the same arithmetic as diffusers' `WanAttnProcessor`)."""
    x1, x2 = x_BNHD.unflatten(-1, (-1, 2)).unbind(-1)
    cos_even, sin_odd = cos[..., 0::2], sin[..., 1::2]
    out = torch.empty_like(x_BNHD)
    out[..., 0::2] = x1 * cos_even - x2 * sin_odd
    out[..., 1::2] = x1 * sin_odd + x2 * cos_even
    return out.type_as(x_BNHD)


def frame_sigmas(sigmas: Sequence[float] | Tensor, batch: int) -> Tensor:
    """Per-frame sigmas `(B, T)` from one value per frame (the same for every sample)."""
    values = torch.as_tensor(sigmas, dtype=torch.float32)
    return values.view(1, -1).expand(batch, -1).contiguous()


def velocity_from_output(
    output_BCFHW: Tensor,
    latents_BCFHW: Tensor,
    sigma_BT: Tensor,
    temporal_patch: int,
    prediction: Prediction,
) -> Tensor:
    """The velocity `noise - x0` from the network output, with one sigma per transformer frame."""
    if prediction == "velocity":
        return output_BCFHW
    sigma = sigma_BT.clamp(min=MIN_SIGMA_FOR_SAMPLE_PREDICTION).repeat_interleave(temporal_patch, 1)
    sigma = sigma[:, None, :, None, None].to(output_BCFHW.dtype)
    return (latents_BCFHW - output_BCFHW) / sigma

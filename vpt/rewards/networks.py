"""The learned reward models: one small video encoder, a quality head and a text-alignment head.

Every model reads raw uint8 videos `(B, F, H, W, 3)` (the generator's output, unchanged) and
returns one score per video, so the exported ONNX graph, the in-process torch model and a Triton
server all take the same bytes.

- `ClipEncoder` factorises space and time: a per-frame 2D CNN gives pooled appearance features
  and soft-argmax keypoints, plus each frame's mean color and fixed features: signal
  statistics (Laplacian energy: edge sharpness and pixel noise; change from the last frame) and
  the object's track (centroid and mass of the pixels unlike the frame's border). Two temporal
  1D convolutions over those per-frame features see motion: direction and speed are the slope
  of the track, jitter its second difference, flicker a change of the mean color, a missing
  object a drop of the mass.
- `QualityModel` regresses normalised defect levels (`levels_K`, 1 = the world's strongest
  level) and scores `exp(-sum_k max(levels_K, 0))`: 1 for a clean video, about 0.37 for one
  strongest defect. Visual quality uses (blur, noise), motion quality (jitter, flicker,
  missing frames).
- `TextAlignmentModel` embeds the video and the prompt into one space and scores
  `sigmoid(scale * cosine + bias)`, its estimate of P(the prompt matches the video) (cf.
  VideoAlign's TA head). The prompt side reads either MiniLM's sentence embedding
  (`TextPooling.MEAN`: last token states mean-pooled, the first shipped model) or MiniLM's
  per-token states with a padding mask (`TextPooling.ATTENTION`: `AttentionTextPool`, a few
  learned queries attending over the real tokens, as in the Perceiver / Set Transformer's
  pooling by multi-head attention). Mean-pooled embeddings of prompts that differ in one
  direction or speed word lie very close together; attention can weigh that one word.
  Attribute heads on the video features and on the prompt embeddings are auxiliary training
  signals (they make the joint space spell out each attribute) and readable diagnostics; they
  do not enter the score.

Shape legend: B batch, F frames, H/W height/width, C channels, T text width, L tokens,
Q queries, E embedding width, K defect levels, N = B * F frames.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

import torch
from torch import Tensor, nn

from vpt.world.vocabulary import ATTRIBUTE_TYPES, AttributeName

SIGNAL_STATISTICS = 4
"""Fixed per-frame signal statistics the encoder adds to its learned features."""
TRACK_FEATURES = 3
"""Fixed per-frame object-track features: centroid x, y and salient mass."""
SALIENCY_THRESHOLD = 0.25
"""RGB distance (0..sqrt(3)) from the frame's border color above which a pixel is object."""


class RewardModelKind(StrEnum):
    """What a learned reward model scores."""

    QUALITY = "quality"
    TEXT_ALIGNMENT = "text_alignment"


class TextPooling(StrEnum):
    """What a text-alignment model reads of the prompt."""

    MEAN = "mean"
    """MiniLM's sentence embedding (token states mean-pooled, L2-normalised), `(B, T)`."""
    ATTENTION = "attention"
    """MiniLM's per-token states `(B, L, T)` and their mask `(B, L)`, pooled by attention."""


@dataclass(frozen=True)
class ClipEncoderConfig:
    """Size of the shared video encoder."""

    frames: int = 16
    """Frames per video the model accepts."""
    height: int = 32
    """Frame height, pixels."""
    width: int = 32
    """Frame width, pixels."""
    channels: tuple[int, int, int] = (12, 24, 32)
    """Widths of the three per-frame convolutions (strides 2, 2, 1)."""
    keypoints: int = 2
    """Soft-argmax keypoint maps per frame (each gives an (x, y))."""
    temporal_width: int = 64
    """Width of the two temporal convolutions."""
    output_dim: int = 128
    """Width of the clip feature vector."""


@dataclass(frozen=True)
class RewardModelConfig:
    """One learned reward model: what it scores and how large it is."""

    kind: RewardModelKind = RewardModelKind.QUALITY
    """Quality regressor or text-alignment model."""
    encoder: ClipEncoderConfig = field(default_factory=ClipEncoderConfig)
    """The video encoder."""
    level_names: tuple[str, ...] = ()
    """Quality models: the defect levels regressed, in output order."""
    level_scales: tuple[float, ...] = ()
    """Quality models: the raw level that counts as 1 (the world's strongest), per level."""
    text_dim: int = 384
    """Text-alignment models: width of the prompt's token states (MiniLM: 384)."""
    embed_dim: int = 64
    """Text-alignment models: width of the joint video-text space."""
    text_pooling: TextPooling = TextPooling.MEAN
    """Text-alignment models: sentence embedding or attention over token states (the default
    reads model folders written before attention pooling existed)."""
    text_tokens: int = 32
    """Attention pooling: token positions per prompt (MiniLM's `max_length`; shorter prompts are
    padded and masked)."""
    text_queries: int = 4
    """Attention pooling: learned queries."""
    text_heads: int = 4
    """Attention pooling: heads of each query."""
    text_width: int = 128
    """Attention pooling: width of the projected tokens (a multiple of `text_heads`)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", RewardModelKind(self.kind))
        object.__setattr__(self, "text_pooling", TextPooling(self.text_pooling))
        if self.text_pooling is TextPooling.ATTENTION:
            if min(self.text_tokens, self.text_queries, self.text_heads) < 1:
                raise ValueError(
                    "text_tokens, text_queries and text_heads must be >= 1, got "
                    f"{self.text_tokens}, {self.text_queries}, {self.text_heads}"
                )
            if self.text_width % self.text_heads:
                raise ValueError(
                    f"text_width ({self.text_width}) must be a multiple of text_heads "
                    f"({self.text_heads})"
                )
        if self.kind is RewardModelKind.QUALITY:
            if not self.level_names or len(self.level_names) != len(self.level_scales):
                raise ValueError(
                    "a quality model needs level_names and level_scales of one length, got "
                    f"{self.level_names} and {self.level_scales}"
                )
            if min(self.level_scales) <= 0:
                raise ValueError(f"level_scales must be > 0, got {self.level_scales}")


class ClipEncoder(nn.Module):
    """uint8 videos `(B, F, H, W, 3)` -> clip features `(B, output_dim)`."""

    grid_x: Tensor
    grid_y: Tensor
    laplacian: Tensor

    def __init__(self, config: ClipEncoderConfig) -> None:
        super().__init__()
        self.config = config
        c1, c2, c3 = config.channels
        self.stem = nn.Sequential(nn.Conv2d(3, c1, 3, stride=2, padding=1), nn.SiLU())
        self.keypoint_logits = nn.Conv2d(c1, config.keypoints, 3, padding=1)
        self.body = nn.Sequential(
            nn.Conv2d(c1, c2, 3, stride=2, padding=1),
            nn.SiLU(),
            nn.Conv2d(c2, c3, 3, stride=1, padding=1),
            nn.SiLU(),
        )
        frame_features = 2 * c3 + 2 * config.keypoints + 3 + SIGNAL_STATISTICS + TRACK_FEATURES
        self.temporal = nn.Sequential(
            nn.Conv1d(frame_features, config.temporal_width, 3, padding=1),
            nn.SiLU(),
            nn.Conv1d(config.temporal_width, config.temporal_width, 3, padding=1),
            nn.SiLU(),
        )
        self.project = nn.Linear(2 * config.temporal_width, config.output_dim)
        stem_height = (config.height + 1) // 2
        stem_width = (config.width + 1) // 2
        grid_y, grid_x = torch.meshgrid(
            (torch.arange(stem_height, dtype=torch.float32) + 0.5) / stem_height,
            (torch.arange(stem_width, dtype=torch.float32) + 0.5) / stem_width,
            indexing="ij",
        )
        self.register_buffer("grid_x", grid_x.reshape(1, 1, -1), persistent=False)
        self.register_buffer("grid_y", grid_y.reshape(1, 1, -1), persistent=False)
        laplacian = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])
        self.register_buffer("laplacian", laplacian.reshape(1, 1, 3, 3), persistent=False)

    def forward(self, video_BFHWC: Tensor) -> Tensor:
        config = self.config
        frames_NCHW = (
            video_BFHWC.to(torch.float32)
            .div(255.0)
            .reshape(-1, config.height, config.width, 3)
            .permute(0, 3, 1, 2)
        )
        stem_NCHW = self.stem(frames_NCHW)
        weights_NKP = torch.softmax(self.keypoint_logits(stem_NCHW).flatten(2), dim=-1)
        keypoint_x_NK = (weights_NKP * self.grid_x).sum(-1)
        keypoint_y_NK = (weights_NKP * self.grid_y).sum(-1)
        body_NCHW = self.body(stem_NCHW)
        per_frame_ND = torch.cat(
            [
                body_NCHW.mean(dim=(2, 3)),
                body_NCHW.amax(dim=(2, 3)),
                keypoint_x_NK,
                keypoint_y_NK,
                frames_NCHW.mean(dim=(2, 3)),
                self.signal_statistics(frames_NCHW),
                self.object_track(frames_NCHW),
            ],
            dim=1,
        )
        sequence_BDF = per_frame_ND.reshape(-1, config.frames, per_frame_ND.shape[1]).transpose(
            1, 2
        )
        temporal_BDF = self.temporal(sequence_BDF)
        pooled_BD = torch.cat([temporal_BDF.mean(dim=2), temporal_BDF.amax(dim=2)], dim=1)
        features: Tensor = self.project(pooled_BD)
        return features

    def object_track(self, frames_NCHW: Tensor) -> Tensor:
        """Per frame: centroid (x, y) of the pixels that differ from the frame's border color
        (in reference pixels / 4 from the centre) and their mass (salient fraction x 10),
        `(N, 3)`. The world keeps objects off the border, so the border shows the background;
        per-frame borders follow flicker."""
        config = self.config
        border_NC = torch.cat(
            [
                frames_NCHW[:, :, 0, :],
                frames_NCHW[:, :, -1, :],
                frames_NCHW[:, :, :, 0],
                frames_NCHW[:, :, :, -1],
            ],
            dim=2,
        ).mean(dim=2)
        distance_NHW = (frames_NCHW - border_NC[:, :, None, None]).square().sum(dim=1)
        weights_NHW = torch.relu(torch.sqrt(distance_NHW + 1e-8) - SALIENCY_THRESHOLD)
        mass_N = weights_NHW.sum(dim=(1, 2))
        scale = 4.0 * min(config.height, config.width) / 32.0
        xs = (torch.arange(config.width, dtype=torch.float32) + 0.5 - config.width / 2) / scale
        ys = (torch.arange(config.height, dtype=torch.float32) + 0.5 - config.height / 2) / scale
        safe_N = mass_N + 1e-6
        centre_x_N = (weights_NHW.sum(dim=1) * xs).sum(dim=1) / safe_N
        centre_y_N = (weights_NHW.sum(dim=2) * ys).sum(dim=1) / safe_N
        salient_N = 10.0 * mass_N / (config.height * config.width)
        return torch.stack([centre_x_N, centre_y_N, salient_N], dim=1)

    def signal_statistics(self, frames_NCHW: Tensor) -> Tensor:
        """Per frame: mean |Laplacian|, RMS Laplacian, max |Laplacian| of the gray frame (edge
        sharpness and pixel noise) and mean |change from the previous frame|, `(N, 4)`."""
        gray_N1HW = frames_NCHW.mean(dim=1, keepdim=True)
        padded = nn.functional.pad(gray_N1HW, (1, 1, 1, 1), mode="replicate")
        laplacian_N1HW = nn.functional.conv2d(padded, self.laplacian)
        magnitude = laplacian_N1HW.abs()
        frames = self.config.frames
        gray_BFHW = gray_N1HW.reshape(-1, frames, self.config.height, self.config.width)
        change_BF = (gray_BFHW[:, 1:] - gray_BFHW[:, :-1]).abs().mean(dim=(2, 3))
        change_BF = torch.cat([torch.zeros_like(change_BF[:, :1]), change_BF], dim=1)
        return torch.stack(
            [
                magnitude.mean(dim=(1, 2, 3)),
                laplacian_N1HW.square().mean(dim=(1, 2, 3)).sqrt(),
                magnitude.amax(dim=(1, 2, 3)),
                change_BF.reshape(-1),
            ],
            dim=1,
        )


class QualityModel(nn.Module):
    """Defect-level regressor; `forward` gives the score exp(-sum of clamped normalised levels)."""

    def __init__(self, config: RewardModelConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = ClipEncoder(config.encoder)
        width = config.encoder.output_dim
        self.head = nn.Sequential(
            nn.SiLU(), nn.Linear(width, width), nn.SiLU(), nn.Linear(width, len(config.level_names))
        )

    def predict_levels(self, video_BFHWC: Tensor) -> Tensor:
        """Normalised defect levels `(B, K)` (1 = the world's strongest level; unclamped)."""
        levels_BK: Tensor = self.head(self.encoder(video_BFHWC))
        return levels_BK

    def forward(self, video_BFHWC: Tensor) -> Tensor:
        return torch.exp(-self.predict_levels(video_BFHWC).clamp_min(0.0).sum(dim=1))


class AttentionTextPool(nn.Module):
    """Token states `(B, L, T)` + mask `(B, L)` (1 = real token) -> `(B, Q * text_width)`.

    Each learned query attends, with `text_heads` heads, over the projected real tokens
    (padding gets an additive -1e4 before the softmax, so a prompt's score does not depend on
    how far it is padded); the pooled values of all queries are concatenated.
    """

    def __init__(self, config: RewardModelConfig) -> None:
        super().__init__()
        width = config.text_width
        self.heads = config.text_heads
        self.tokens = nn.Sequential(nn.Linear(config.text_dim, width), nn.SiLU())
        self.keys = nn.Linear(width, width)
        self.values = nn.Linear(width, width)
        self.queries = nn.Parameter(torch.randn(config.text_queries, width) / width**0.5)
        self.output_dim = config.text_queries * width

    def forward(self, tokens_BLT: Tensor, mask_BL: Tensor) -> Tensor:
        batch, length, _ = tokens_BLT.shape
        queries, width = self.queries.shape
        head_dim = width // self.heads
        hidden_BLW = self.tokens(tokens_BLT)
        keys_BHLD = self.keys(hidden_BLW).reshape(batch, length, self.heads, head_dim)
        values_BHLD = self.values(hidden_BLW).reshape(batch, length, self.heads, head_dim)
        keys_BHLD, values_BHLD = keys_BHLD.transpose(1, 2), values_BHLD.transpose(1, 2)
        queries_HQD = self.queries.reshape(queries, self.heads, head_dim).transpose(0, 1)
        scores_BHQL = torch.matmul(queries_HQD, keys_BHLD.transpose(2, 3)) / head_dim**0.5
        padding_B11L = (1.0 - mask_BL.to(scores_BHQL.dtype))[:, None, None, :] * -1e4
        weights_BHQL = torch.softmax(scores_BHQL + padding_B11L, dim=-1)
        pooled_BHQD = torch.matmul(weights_BHQL, values_BHLD)
        return pooled_BHQD.permute(0, 2, 1, 3).reshape(batch, queries * width)


class TextAlignmentModel(nn.Module):
    """P(prompt matches video) from a video embedding and a prompt embedding (read from the
    sentence embedding, or from the token states by `AttentionTextPool`)."""

    def __init__(self, config: RewardModelConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = ClipEncoder(config.encoder)
        width = config.encoder.output_dim
        self.video_projection = nn.Sequential(nn.SiLU(), nn.Linear(width, config.embed_dim))
        self.text_pool = (
            AttentionTextPool(config) if config.text_pooling is TextPooling.ATTENTION else None
        )
        text_width = config.text_dim if self.text_pool is None else self.text_pool.output_dim
        self.text_projection = nn.Sequential(
            nn.Linear(text_width, 4 * config.embed_dim),
            nn.SiLU(),
            nn.Linear(4 * config.embed_dim, config.embed_dim),
        )
        self.logit_scale = nn.Parameter(torch.tensor(10.0))
        self.logit_bias = nn.Parameter(torch.tensor(-5.0))
        self.attribute_heads = nn.ModuleDict(
            {name.value: nn.Linear(width, len(ATTRIBUTE_TYPES[name])) for name in AttributeName}
        )
        self.text_attribute_heads = nn.ModuleDict(
            {
                name.value: nn.Linear(config.embed_dim, len(ATTRIBUTE_TYPES[name]) + 1)
                for name in AttributeName
            }
        )

    def embed_video(self, video_BFHWC: Tensor) -> tuple[Tensor, Tensor]:
        """(unit video embeddings `(B, E)`, encoder features `(B, output_dim)`)."""
        features_BD = self.encoder(video_BFHWC)
        embedding_BE = nn.functional.normalize(self.video_projection(features_BD), dim=-1)
        return embedding_BE, features_BD

    def embed_text(self, text: Tensor, text_mask: Tensor | None = None) -> Tensor:
        """Unit prompt embeddings `(B, E)` from sentence embeddings `(B, T)` (mean pooling) or
        token states `(B, L, T)` and their mask `(B, L)` (attention pooling)."""
        if self.text_pool is not None:
            if text_mask is None or text.dim() != 3:
                raise ValueError(
                    "an attention-pooling text-alignment model takes token states (B, L, T) "
                    f"and a mask (B, L); got {tuple(text.shape)} and "
                    f"{None if text_mask is None else tuple(text_mask.shape)}"
                )
            text = self.text_pool(text, text_mask)
        elif text_mask is not None:
            raise ValueError("a mean-pooling text-alignment model takes no token mask")
        return nn.functional.normalize(self.text_projection(text), dim=-1)

    def match_logits(self, video_embedding_BE: Tensor, text_embedding_ME: Tensor) -> Tensor:
        """Logits of P(match) for every (video, prompt) pair, `(B, M)`."""
        cosine_BM = video_embedding_BE @ text_embedding_ME.T
        return self.logit_scale * cosine_BM + self.logit_bias

    def attribute_logits(self, features_BD: Tensor) -> dict[str, Tensor]:
        """Per attribute, logits over its values (in vocabulary order), `(B, values)`."""
        return {name: head(features_BD) for name, head in self.attribute_heads.items()}

    def text_attribute_logits(self, text_embedding_BE: Tensor) -> dict[str, Tensor]:
        """Per attribute, logits over its values and a last "not stated" class, `(B, values+1)`,
        read from prompt embeddings: they make the joint space spell out each attribute."""
        return {name: head(text_embedding_BE) for name, head in self.text_attribute_heads.items()}

    def forward(self, video_BFHWC: Tensor, text: Tensor, text_mask: Tensor | None = None) -> Tensor:
        video_BE, _ = self.embed_video(video_BFHWC)
        text_BE = self.embed_text(text, text_mask)
        logits_B = self.logit_scale * (video_BE * text_BE).sum(dim=1) + self.logit_bias
        return torch.sigmoid(logits_B)


RewardModule = QualityModel | TextAlignmentModel


def build_reward_model(config: RewardModelConfig) -> RewardModule:
    """A freshly initialised model for `config`."""
    if config.kind is RewardModelKind.QUALITY:
        return QualityModel(config)
    return TextAlignmentModel(config)

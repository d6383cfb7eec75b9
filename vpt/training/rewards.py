"""`vpt train rewards`: train the learned rewards on the shapes world, export them, ship them.

Three models (`vpt.rewards.networks`), each trained by the shared loop (AdamW, EMA, progress,
JSONL metrics, exact resume) in its own folder `RUN/<name>/`:

- `visual_quality`, `motion_quality`: regress the normalised true defect levels of fresh world
  renders (`vpt.training.reward_data`), loss = mean squared error of the levels;
- `text_alignment`: a fixed pool of captioned attribute draws (each with a positive and a
  hard-negative caption, encoded once by MiniLM and cached in `RUN/text_alignment/`: sentence
  embeddings, or token states and masks for attention pooling), rendered
  afresh with defects every step. Loss = balanced binary cross-entropy of P(match) over every
  (video, caption) pair of the batch, the label being whether the caption's stated attributes
  agree with the video's (short captions can match other videos), plus
  `hard_negative_weight` x the same BCE on each clip's own positive and own hard negative only,
  plus `attribute_loss_weight` x cross-entropy of the attribute heads (the video's true values from
  the video features; each caption's stated values, or "not stated", from its embedding), plus
  `shared_head_weight` x cross-entropy of the same text heads read from the video embeddings
  (true values), which ties the two sides' attribute directions in the joint space.

After training, the EMA weights are exported to ONNX and saved as verified reward model folders
in `RUN/models/<name>/` (copy these to `vpt/assets/rewards/` to ship them), with held-out
figures in each manifest, and a Triton model repository is written to `RUN/triton/`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from tqdm import tqdm

from vpt.config import config_to_dict
from vpt.models.text_encoder import TextEncoder, TextEncoderConfig
from vpt.rewards.learned import PromptEmbedder, TorchReward, prompt_inputs
from vpt.rewards.model_files import LoadedRewardModel, load_reward_model, save_reward_model
from vpt.rewards.networks import (
    ClipEncoderConfig,
    QualityModel,
    RewardModelConfig,
    RewardModelKind,
    TextAlignmentModel,
    TextPooling,
    build_reward_model,
)
from vpt.rewards.onnx_export import export_onnx, write_triton_repository
from vpt.training.loop import LoopConfig, OptimConfig, train_loop
from vpt.training.reward_data import (
    MOTION_LEVELS,
    VISUAL_LEVELS,
    CaptionPair,
    RewardDataConfig,
    draw_caption_pair,
    draw_clip,
    render_reward_clip,
    stack_frames,
)
from vpt.training.reward_quality import quality_metrics, text_alignment_metrics
from vpt.world.vocabulary import ATTRIBUTE_TYPES, AttributeName

REWARD_MODELS = ("visual_quality", "motion_quality", "text_alignment")
"""The learned rewards `vpt train rewards` trains, in training order."""
CLIP_STREAMS = {"visual_quality": 1, "motion_quality": 2, "text_alignment": 3}
"""Random stream of each model's training clips."""
CAPTION_STREAM = 4
"""Random stream of the text-alignment caption pool."""


@dataclass(frozen=True)
class StageConfig:
    """Batch, optimizer and length of one model's training."""

    batch_size: int = 32
    """Clips per step."""
    optim: OptimConfig = field(
        default_factory=lambda: OptimConfig(lr=2e-3, warmup_steps=50, ema_decay=0.99)
    )
    """Optimizer."""
    loop: LoopConfig = field(default_factory=lambda: LoopConfig(steps=800, log_every=50))
    """Length and cadence."""


@dataclass(frozen=True)
class RewardTrainingConfig:
    """A run of `vpt train rewards`."""

    data: RewardDataConfig = field(default_factory=RewardDataConfig)
    """Training clips and captions."""
    encoder: ClipEncoderConfig = field(default_factory=ClipEncoderConfig)
    """Video encoder of every model (its geometry must be the world's)."""
    text_encoder: TextEncoderConfig = field(default_factory=TextEncoderConfig)
    """Prompt encoder of the text-alignment model."""
    embed_dim: int = 64
    """Joint video-text space of the text-alignment model."""
    text_pooling: TextPooling = TextPooling.ATTENTION
    """What the text-alignment model reads of a prompt: MiniLM's sentence embedding (`mean`) or
    its token states, pooled by learned-query attention (`attention`)."""
    text_queries: int = 4
    """Attention pooling: learned queries."""
    text_heads: int = 4
    """Attention pooling: heads of each query."""
    text_width: int = 128
    """Attention pooling: width of the projected tokens."""
    attribute_loss_weight: float = 0.5
    """Weight of the attribute heads' cross-entropy in the text-alignment loss."""
    shared_head_weight: float = 1.0
    """Weight of the cross-entropy of the text attribute heads applied to the video embeddings
    (the true values): both sides of the joint space then spell each attribute along the same
    directions, which the cosine compares (0 = the loss of the first shipped model)."""
    hard_negative_weight: float = 1.0
    """Weight of the hard-negative term of the text-alignment loss: BCE of each clip with its own
    positive and its own hard negative (captions differing in one attribute), which the all-pairs
    BCE, dominated by easy pairs, barely sees (0 = the loss of the first shipped model)."""
    visual_quality: StageConfig = field(default_factory=StageConfig)
    """Training of the visual-quality model."""
    motion_quality: StageConfig = field(default_factory=StageConfig)
    """Training of the motion-quality model."""
    text_alignment: StageConfig = field(default_factory=StageConfig)
    """Training of the text-alignment model."""
    models: tuple[str, ...] = REWARD_MODELS
    """Which models to train."""
    eval_clips: int = 200
    """Held-out clips for the figures stored in each manifest."""
    version: str = "shapes-rewards-v1"
    """Version recorded in each model's manifest."""

    def __post_init__(self) -> None:
        unknown = sorted(set(self.models) - set(REWARD_MODELS))
        if unknown or not self.models:
            raise ValueError(
                f"models must name some of {', '.join(REWARD_MODELS)}, got {list(self.models)}"
            )
        if "text_alignment" in self.models and self.data.text_pool < self.text_alignment.batch_size:
            raise ValueError(
                f"data.text_pool ({self.data.text_pool}) must be at least "
                f"text_alignment.batch_size ({self.text_alignment.batch_size})"
            )
        world = self.data.world
        geometry = (self.encoder.frames, self.encoder.height, self.encoder.width)
        if geometry != (world.frames, world.height, world.width):
            raise ValueError(
                f"encoder geometry {geometry} (frames, height, width) differs from the world's "
                f"{(world.frames, world.height, world.width)}; set both to the same size"
            )

    def model_config(self, name: str, text_dim: int = 384) -> RewardModelConfig:
        """The architecture of reward model `name`."""
        if name == "text_alignment":
            return RewardModelConfig(
                kind=RewardModelKind.TEXT_ALIGNMENT,
                encoder=self.encoder,
                text_dim=text_dim,
                embed_dim=self.embed_dim,
                text_pooling=self.text_pooling,
                text_tokens=self.text_encoder.max_length,
                text_queries=self.text_queries,
                text_heads=self.text_heads,
                text_width=self.text_width,
            )
        levels = VISUAL_LEVELS if name == "visual_quality" else MOTION_LEVELS
        return RewardModelConfig(
            kind=RewardModelKind.QUALITY,
            encoder=self.encoder,
            level_names=levels,
            level_scales=self.data.level_scales(levels),
        )


def batch_rng(seed: int, stream: int, step: int) -> np.random.Generator:
    """The random stream of one training step (a pure function of the step)."""
    return np.random.default_rng([seed, stream, step, 7])


def quality_loss_fn(
    model: QualityModel, data: RewardDataConfig, stage: StageConfig, stream: int
) -> Callable[[int, torch.Generator], tuple[Tensor, dict[str, float]]]:
    """MSE of the normalised defect levels on a fresh batch of training renders."""
    scales = torch.tensor(model.config.level_scales, dtype=torch.float32)
    names = model.config.level_names

    def compute_loss(step: int, _: torch.Generator) -> tuple[Tensor, dict[str, float]]:
        first = step * stage.batch_size
        clips = [draw_clip(data, stream, first + i, False) for i in range(stage.batch_size)]
        levels_BK = torch.tensor([[c.level(n) for n in names] for c in clips]) / scales
        predicted_BK = model.predict_levels(torch.from_numpy(stack_frames(clips)))
        loss = nn.functional.mse_loss(predicted_BK, levels_BK.to(torch.float32))
        return loss, {}

    return compute_loss


@dataclass
class CaptionPool:
    """The text-alignment training captions and the model's text inputs for each."""

    pairs: list[CaptionPair]
    """The captioned attribute draws."""
    positives: tuple[Tensor, ...]
    """Text inputs of the positive captions, first axis = pool: the sentence embeddings
    `(pool, T)`, or the token states `(pool, L, T)` and their masks `(pool, L)`."""
    negatives: tuple[Tensor, ...]
    """Text inputs of the hard-negative captions, as `positives`."""

    def text_inputs(self, items: Tensor) -> list[Tensor]:
        """The text inputs of the positives, then the negatives, of pool `items`."""
        return [
            torch.cat([positive[items], negative[items]])
            for positive, negative in zip(self.positives, self.negatives, strict=True)
        ]


def build_caption_pool(
    data: RewardDataConfig, embedder: PromptEmbedder, model_config: RewardModelConfig, cache: Path
) -> CaptionPool:
    """Draw the caption pool and encode it for `model_config`; cached in `cache` (an `.npz`),
    keyed by the data config, the text encoder and the text inputs."""
    pairs = [draw_caption_pair(data, CAPTION_STREAM, i, False) for i in range(data.text_pool)]
    pooling, tokens = model_config.text_pooling, model_config.text_tokens
    key = json.dumps(
        {
            "data": config_to_dict(data),
            "encoder": str(embedder.encoder.config),
            "text_pooling": pooling.value,
            "text_tokens": tokens,
        },
        sort_keys=True,
    )
    if cache.is_file():
        stored = np.load(cache)
        if str(stored["key"]) == key:
            names = [str(n) for n in stored["names"]]
            return CaptionPool(
                pairs,
                tuple(torch.from_numpy(stored[f"positive_{n}"]) for n in names),
                tuple(torch.from_numpy(stored[f"negative_{n}"]) for n in names),
            )
    positive: list[dict[str, np.ndarray]] = []
    negative: list[dict[str, np.ndarray]] = []
    starts = range(0, len(pairs), 256)
    for start in tqdm(starts, desc="embedding captions", file=sys.stderr, disable=None):
        chunk = pairs[start : start + 256]
        positive.append(prompt_inputs(embedder, pooling, [p.positive for p in chunk], tokens))
        negative.append(prompt_inputs(embedder, pooling, [p.negative for p in chunk], tokens))
    names = list(positive[0])
    arrays = {
        f"{side}_{name}": np.concatenate([part[name] for part in parts])
        for side, parts in (("positive", positive), ("negative", negative))
        for name in names
    }
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, key=np.array(key), names=np.array(names), **arrays)  # type: ignore[arg-type]
    return CaptionPool(
        pairs,
        tuple(torch.from_numpy(arrays[f"positive_{n}"]) for n in names),
        tuple(torch.from_numpy(arrays[f"negative_{n}"]) for n in names),
    )


def text_alignment_loss_fn(
    model: TextAlignmentModel, config: RewardTrainingConfig, pool: CaptionPool, stream: int
) -> Callable[[int, torch.Generator], tuple[Tensor, dict[str, float]]]:
    """Balanced BCE over all (video, caption) pairs of a batch + attribute cross-entropy."""
    data, stage = config.data, config.text_alignment

    def compute_loss(step: int, _: torch.Generator) -> tuple[Tensor, dict[str, float]]:
        rng = batch_rng(data.seed, stream, step)
        items = rng.choice(len(pool.pairs), size=stage.batch_size, replace=False)
        pairs = [pool.pairs[int(i)] for i in items]
        first = step * stage.batch_size
        clip_rngs = [
            np.random.default_rng([data.seed, stream, first + i]) for i in range(len(items))
        ]
        clips = [
            render_reward_clip(p.attributes, r, data) for p, r in zip(pairs, clip_rngs, strict=True)
        ]
        video_BE, features_BD = model.embed_video(torch.from_numpy(stack_frames(clips)))
        index = torch.from_numpy(items.astype(np.int64))
        text_ME = model.embed_text(*pool.text_inputs(index))
        logits_BM = model.match_logits(video_BE, text_ME)
        stated = [p.positive_stated for p in pairs] + [p.negative_stated for p in pairs]
        labels_BM = torch.tensor(
            [[float(s.agrees_with(p.attributes)) for s in stated] for p in pairs]
        )
        losses_BM = nn.functional.binary_cross_entropy_with_logits(
            logits_BM, labels_BM, reduction="none"
        )
        positive = (losses_BM * labels_BM).sum() / labels_BM.sum().clamp_min(1.0)
        negative = (losses_BM * (1 - labels_BM)).sum() / (1 - labels_BM).sum().clamp_min(1.0)
        own = torch.arange(len(pairs))
        hard_loss = 0.5 * (losses_BM[own, own].mean() + losses_BM[own, own + len(pairs)].mean())
        attribute_loss, shared_loss = torch.zeros(()), torch.zeros(())
        text_logits = model.text_attribute_logits(text_ME)
        video_text_logits = model.text_attribute_logits(video_BE)
        for name, logits in model.attribute_logits(features_BD).items():
            attribute = AttributeName(name)
            values = list(ATTRIBUTE_TYPES[attribute])
            truth = torch.tensor([values.index(p.attributes.get(attribute)) for p in pairs])
            said = [s.get(attribute) for s in stated]
            text_truth = torch.tensor([len(values) if v is None else values.index(v) for v in said])
            attribute_loss = (
                attribute_loss
                + nn.functional.cross_entropy(logits, truth)
                + nn.functional.cross_entropy(text_logits[name], text_truth)
            )
            values_only = video_text_logits[name][:, : len(values)]  # no "not stated" class
            shared_loss = shared_loss + nn.functional.cross_entropy(values_only, truth)
        attribute_loss = attribute_loss / (2 * len(AttributeName))
        shared_loss = shared_loss / len(AttributeName)
        match_loss = 0.5 * (positive + negative)
        loss = (
            match_loss
            + config.hard_negative_weight * hard_loss
            + config.attribute_loss_weight * attribute_loss
            + config.shared_head_weight * shared_loss
        )
        accuracy = ((logits_BM > 0).float() == labels_BM).float().mean()
        return loss, {
            "match_loss": float(match_loss.detach()),
            "hard_negative_loss": float(hard_loss.detach()),
            "attribute_loss": float(attribute_loss.detach()),
            "shared_head_loss": float(shared_loss.detach()),
            "pair_accuracy": float(accuracy),
        }

    return compute_loss


def train_rewards(config: RewardTrainingConfig, run_dir: Path) -> Path | None:
    """Train (or resume) every configured model; returns `RUN/models`, or None if stopped."""
    run_dir.mkdir(parents=True, exist_ok=True)
    _check_resumable(run_dir / "config.json", config)
    (run_dir / "config.json").write_text(json.dumps(config_to_dict(config), indent=2))
    embedder: PromptEmbedder | None = None
    models_dir = run_dir / "models"
    for name in config.models:
        stage: StageConfig = getattr(config, name)
        torch.manual_seed(stage.loop.seed)
        if name == "text_alignment":
            embedder = embedder or PromptEmbedder(TextEncoder(config.text_encoder))
            model = build_reward_model(config.model_config(name, embedder.dim))
            assert isinstance(model, TextAlignmentModel)
            cache = run_dir / name / "caption_embeddings.npz"
            pool = build_caption_pool(config.data, embedder, model.config, cache)
            loss_fn = text_alignment_loss_fn(model, config, pool, CLIP_STREAMS[name])
        else:
            model = build_reward_model(config.model_config(name))
            assert isinstance(model, QualityModel)
            loss_fn = quality_loss_fn(model, config.data, stage, CLIP_STREAMS[name])
        result = train_loop(
            model,
            loss_fn,
            run_dir / name,
            stage.optim,
            stage.loop,
            desc=name,
            info={"stage": f"reward:{name}"},
        )
        if not result.finished:
            return None
        if result.ema is not None:
            result.ema.copy_to(model)
        model.eval().requires_grad_(False)
        loaded = LoadedRewardModel(name, model, model.config, None, models_dir / name)
        metrics = {
            "final_loss": result.last_metrics.get("loss"),
            "cpu_seconds": round(result.cpu_seconds, 1),
            "parameters": sum(p.numel() for p in model.parameters()),
            **held_out_metrics(name, loaded, config, embedder),
        }
        save_reward_model(
            model,
            models_dir / name,
            name=name,
            version=config.version,
            recipe=config_to_dict(config),
            steps=result.step,
            metrics=metrics,
            onnx_bytes=export_onnx(model),
        )
        load_reward_model(models_dir / name)  # verify what was written
    write_triton_repository(models_dir, run_dir / "triton")
    return models_dir


def held_out_metrics(
    name: str,
    loaded: LoadedRewardModel,
    config: RewardTrainingConfig,
    embedder: PromptEmbedder | None,
) -> dict[str, float]:
    """The held-out figures of one trained model (see `vpt.training.reward_quality`)."""
    reward = TorchReward(loaded, embedder)
    if name == "text_alignment":
        report = text_alignment_metrics(reward, config.data, config.eval_clips)
    else:
        report = quality_metrics(reward, config.data, config.eval_clips)
    return {key: value for key, value in report.items() if isinstance(value, float)}


def _check_resumable(saved_file: Path, config: RewardTrainingConfig) -> None:
    """Refuse a run folder started with a different recipe (loop lengths may change)."""
    if not saved_file.is_file():
        return
    saved = json.loads(saved_file.read_text())
    current = config_to_dict(config)

    def without_loops(tree: dict[str, object]) -> dict[str, object]:
        return {
            key: (
                {k: v for k, v in value.items() if k != "loop"}
                if isinstance(value, dict)
                else value
            )
            for key, value in tree.items()
            if key not in ("models", "eval_clips")
        }

    stripped_saved, stripped_current = without_loops(saved), without_loops(current)
    changed = sorted(
        key for key in stripped_current if stripped_saved.get(key) != stripped_current[key]
    )
    if changed:
        raise ValueError(
            f"{saved_file.parent} holds a run started with a different recipe (changed: "
            f"{', '.join(changed)}); use a new --run-dir, or the original recipe to resume"
        )

"""Stage 1 of the paper, SFT: flow-matching training of the video transformer on curated
captioned clips, giving a stable instruction-following policy for the RL stages.

Loss: `vpt.training.flow_matching` (x_sigma = (1 - sigma) x0 + sigma * noise, target
noise - x0) with sigma from a shifted logit-normal density; captions are dropped (replaced by
the negative prompt) with probability `caption_dropout` so classifier-free guidance works.
Optionally (`frame_noise`, off by default) a share of each batch gets one sigma per transformer
frame, as in Diffusion Forcing (`vpt.training.frame_noise`); sampling is unchanged.
AdamW, warm-up + cosine decay, gradient clipping, EMA; the saved model is the EMA.

The same trainer pre-trains from scratch (`init_from: null`, with a trained autoencoder) and
fine-tunes an existing checkpoint (`init_from: CKPT`), e.g. on the curated subset.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from vpt.checkpoint import Manifest, load_autoencoder, load_generator, save_checkpoint
from vpt.config import config_to_dict
from vpt.eval.attributes import evaluate_attributes, held_out_cases
from vpt.generator import Generator, GeneratorConfig
from vpt.models.autoencoder import PixelSpace
from vpt.models.text_encoder import TextEncoder
from vpt.models.transformer import TransformerConfig, build_transformer, count_parameters
from vpt.sampling import TimestepSamplingConfig, sample_training_sigmas
from vpt.training.ema import EMA
from vpt.training.flow_matching import flow_matching_loss, foreground_weights
from vpt.training.frame_noise import FrameNoiseConfig, per_frame_sigmas
from vpt.training.latent_data import LatentDataConfig, LatentDataset, build_latent_dataset
from vpt.training.loop import LoopConfig, OptimConfig, train_loop
from vpt.world import save_preview_grid

PIXELS = "pixels"


@dataclass(frozen=True)
class SFTConfig:
    """A run of `vpt train sft`."""

    data: LatentDataConfig = field(default_factory=LatentDataConfig)
    """Training clips."""
    init_from: str | None = None
    """Checkpoint to fine-tune; None trains a new transformer from scratch."""
    autoencoder: str = PIXELS
    """Codec when training from scratch: `pixels` (pixel space) or a trained VAE folder."""
    transformer: TransformerConfig = field(default_factory=TransformerConfig)
    """Transformer size when training from scratch."""
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    """Geometry, default sampler, prediction type and text encoder of the produced model."""
    timesteps: TimestepSamplingConfig = field(
        default_factory=lambda: TimestepSamplingConfig(kind="logit_normal", shift=1.0)
    )
    """Training noise-level density."""
    frame_noise: FrameNoiseConfig = field(default_factory=FrameNoiseConfig)
    """Per-transformer-frame noise levels for a share of each batch (Diffusion Forcing)."""
    first_frame_fraction: float = 0.0
    """Share of each batch trained with its first latent frame given clean and left out of the
    loss (first-frame conditioning by replacement, as in image-to-video). With one clean frame
    the object's place is known but not its motion, so only the prompt tells the direction:
    this is what binds the direction words (docs/generator.md). Sampling is unchanged (plain
    text-to-video); 0 = off, and then a step is bit-identical to one without the option."""
    object_weight: float = 1.0
    """Loss weight of latent positions that show the object (`foreground_weights`); 1 = off,
    and then a step is bit-identical to one without the option."""
    object_threshold: float = 2.0
    """Latent distance from the frame's background median above which a position counts as
    object (normalised latent units; with the default autoencoder about 18% of positions)."""
    caption_dropout: float = 0.1
    """Probability of replacing a caption with the negative prompt (for CFG)."""
    batch_size: int = 32
    """Clips per optimizer step."""
    optim: OptimConfig = field(default_factory=OptimConfig)
    """Optimizer."""
    loop: LoopConfig = field(default_factory=LoopConfig)
    """Run length and cadence."""
    eval_every: int = 0
    """Evaluate attribute accuracy on held-out prompts every this many steps (0 = only at end)."""
    eval_prompts: int = 48
    """Held-out prompts per evaluation."""
    version: str | None = None
    """Version name of the produced checkpoint (default: derived from its content)."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.first_frame_fraction <= 1.0:
            raise ValueError(
                f"first_frame_fraction must be in [0, 1], got {self.first_frame_fraction}"
            )
        if self.object_weight < 1.0:
            raise ValueError(f"object_weight must be >= 1 (1 = off), got {self.object_weight}")
        if self.object_threshold <= 0.0:
            raise ValueError(f"object_threshold must be > 0, got {self.object_threshold}")


def build_generator(config: SFTConfig, device: str = "cpu") -> tuple[Generator, Manifest | None]:
    """The generator a run starts from: a checkpoint, or a fresh transformer + trained AE."""
    if config.init_from:
        loaded = load_generator(config.init_from, device)
        generator = loaded.generator
        generator.config = replace(config.generator, text_encoder=generator.config.text_encoder)
        return generator, loaded.manifest
    autoencoder = (
        PixelSpace() if config.autoencoder == PIXELS else load_autoencoder(config.autoencoder)
    )
    text_encoder = TextEncoder(config.generator.text_encoder, device)
    if config.transformer.text_dim != text_encoder.dim:
        raise ValueError(
            f"transformer.text_dim={config.transformer.text_dim} but the text "
            f"encoder gives {text_encoder.dim}-wide embeddings"
        )
    transformer = build_transformer(config.transformer).to(device)
    return Generator(transformer, autoencoder.to(device), text_encoder, config.generator), None


def make_loss_fn(
    config: SFTConfig, generator: Generator, dataset: LatentDataset
) -> Callable[[int, torch.Generator], tuple[Tensor, dict[str, float]]]:
    negative = generator.config.negative_prompt
    config.frame_noise.validate()
    transformer_frames = generator.latent_shape()[1] // generator.transformer.config.patch_size[0]

    def compute_loss(step: int, rng: torch.Generator) -> tuple[Tensor, dict[str, float]]:
        indices = dataset.batch_indices(step, config.batch_size, config.data.seed)
        x0 = dataset.get(indices).to(generator.device)
        drop = torch.rand(len(indices), generator=rng) < config.caption_dropout
        captions = [
            negative if dropped else dataset.captions[int(i)]
            for i, dropped in zip(indices, drop.tolist(), strict=True)
        ]
        text = generator.encode_prompts(captions)
        sigma = sample_training_sigmas(len(indices), config.timesteps, rng).to(x0.device)
        noise = torch.randn(x0.shape, generator=rng).to(x0.device)
        if config.frame_noise.is_enabled:
            sigma = per_frame_sigmas(
                sigma, transformer_frames, config.frame_noise, config.timesteps, rng
            )
        clean_first = None
        if config.first_frame_fraction > 0:
            clean_first = torch.rand(len(indices), generator=rng) < config.first_frame_fraction
            clean_first = clean_first.to(x0.device)
        weight = None
        if config.object_weight != 1.0:
            weight = foreground_weights(x0, config.object_weight, config.object_threshold)
        losses = flow_matching_loss(
            lambda x, s: generator.velocity(x, s, text), x0, noise, sigma, clean_first, weight
        )
        return losses.mean(), {}

    return compute_loss


def run_sft(config: SFTConfig, run_dir: Path, device: str = "cpu") -> Path | None:
    """Train (or resume) an SFT run; returns the final checkpoint folder, or None if stopped."""
    run_dir.mkdir(parents=True, exist_ok=True)
    _check_resumable(run_dir / "config.json", config)
    (run_dir / "config.json").write_text(json.dumps(config_to_dict(config), indent=2))
    torch.manual_seed(config.loop.seed)
    generator, parent = build_generator(config, device)
    generator.autoencoder.requires_grad_(False)
    dataset = build_latent_dataset(config.data, generator.autoencoder, run_dir / "data")
    evaluation = _make_eval_hook(config, generator, run_dir / "samples")
    hooks = {config.eval_every: evaluation} if config.eval_every else {}
    result = train_loop(
        generator.transformer,
        make_loss_fn(config, generator, dataset),
        run_dir,
        config.optim,
        config.loop,
        desc="sft",
        hooks=hooks,
        info={"stage": "sft", "parameters": count_parameters(generator.transformer)},
    )
    if not result.finished:
        return None
    if result.ema is not None:
        result.ema.copy_to(generator.transformer)
    generator.transformer.eval()
    final_metrics = evaluation(result.step, None)
    metrics = {
        "final_loss": result.last_metrics.get("loss"),
        "cpu_seconds": round(result.cpu_seconds, 1),
        "transformer_parameters": count_parameters(generator.transformer),
        **final_metrics,
    }
    checkpoint = run_dir / "checkpoint"
    save_checkpoint(
        generator,
        checkpoint,
        version=config.version,
        parent=parent.version if parent else None,
        stage="sft",
        recipe=config_to_dict(config),
        data_seed=config.data.seed,
        steps=result.step,
        metrics=metrics,
        overwrite=True,
    )
    return checkpoint


def _check_resumable(saved_file: Path, config: SFTConfig) -> None:
    """Refuse to continue a run folder that was started with a different recipe.

    Only `loop` (length, cadence, stop_after) and `generator.sampler` (the sampling defaults the
    checkpoint ships with; training never reads them) may change between invocations: resuming
    with a shorter `loop.steps` is how a run is stopped early at its last saved state. A field
    the saved config lacks (added to vpt later) counts as its default.
    """
    if not saved_file.is_file():
        return
    saved = json.loads(saved_file.read_text())
    current = config_to_dict(config)
    defaults = config_to_dict(SFTConfig())
    for recipe in (saved, current):
        if isinstance(recipe.get("generator"), dict):
            recipe["generator"] = {k: v for k, v in recipe["generator"].items() if k != "sampler"}
    defaults["generator"].pop("sampler")
    changed = sorted(
        key
        for key in current
        if key != "loop"
        and _with_defaults(saved.get(key, defaults[key]), defaults[key]) != current[key]
    )
    if changed:
        raise ValueError(
            f"{saved_file.parent} holds a run started with a different recipe (changed: "
            f"{', '.join(changed)}); use a new --run-dir, or the original config to resume"
        )


def _with_defaults(saved: Any, default: Any) -> Any:
    """`saved` with the keys it lacks (fields added to a nested config later) from `default`."""
    if isinstance(saved, dict) and isinstance(default, dict):
        return {**default, **{k: _with_defaults(v, default.get(k)) for k, v in saved.items()}}
    return saved


def _make_eval_hook(
    config: SFTConfig, generator: Generator, samples_dir: Path
) -> Callable[[int, EMA | None], dict[str, Any]]:
    """Held-out attribute accuracy of the EMA weights; also writes a PNG grid of samples."""
    cases = held_out_cases(config.eval_prompts, seed=9_000)

    def evaluate(step: int, ema: EMA | None) -> dict[str, Any]:
        transformer = generator.transformer
        transformer.eval()
        with ema.applied_to(transformer) if ema else contextlib.nullcontext():
            report = evaluate_attributes(generator, cases)
        transformer.train()
        if report.videos is not None:
            shown = min(8, len(cases))
            save_preview_grid(
                list(report.videos[:shown]),
                samples_dir / f"step{step:07d}.png",
                captions=[case.prompt for case in cases[:shown]],
            )
        return {f"eval_{name}": round(value, 4) for name, value in report.summary().items()}

    return evaluate

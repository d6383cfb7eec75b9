"""Checkpoint folders: diffusers-style components + `vpt.json` + a hash-verified manifest.

Layout of a vpt checkpoint::

    CKPT/
      transformer/config.json, diffusion_pytorch_model.safetensors   (WanTransformer3DModel)
      vae/config.json, diffusion_pytorch_model.safetensors           (AutoencoderKL[Wan])
      text_encoder/, tokenizer/      only when the text encoder is not the packaged MiniLM
      vpt.json                       GeneratorConfig (geometry, sampler defaults, prediction)
      manifest.json                  version, parent, recipe, data seed, steps, metrics and
                                     the sha256 and size of every other file

Loading verifies every file against the manifest and refuses a missing, truncated or modified
one. A real Wan2.1 diffusers folder (`model_index.json`, no manifest) loads through the same
function; it has no manifest to verify, so its provenance is the caller's responsibility.
Saving writes into a temporary sibling folder and renames it into place, so a crash never
leaves a half-written checkpoint under the final name.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from diffusers import AutoencoderKL, AutoencoderKLWan, WanTransformer3DModel

from vpt.config import ConfigError, config_from_dict, config_to_dict
from vpt.generator import Generator, GeneratorConfig, SamplerSettings, VideoGeometry
from vpt.models.autoencoder import PIXEL_SPACE_CLASS, PixelSpace, VideoAutoencoder
from vpt.models.text_encoder import PACKAGED_MINILM, TextEncoder, TextEncoderConfig

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
GENERATOR_CONFIG = "vpt.json"
HASH_CHUNK = 1 << 20


class CheckpointError(RuntimeError):
    """A checkpoint folder is missing, incomplete, tampered with or not understood."""


@dataclass(frozen=True)
class Manifest:
    """Provenance and integrity record of a checkpoint."""

    version: str
    """Unique name of this model version."""
    parent: str | None = None
    """Version this one was trained from (None for a model trained from scratch)."""
    stage: str = "sft"
    """Post-training stage that produced it (sft, grpo, distill, ...)."""
    created_at: str = ""
    """UTC time of saving, ISO 8601."""
    recipe: dict[str, Any] = field(default_factory=dict)
    """The resolved training config that produced the weights."""
    data_seed: int | None = None
    """Seed of the training data."""
    steps: int = 0
    """Optimizer steps taken in the producing run."""
    metrics: dict[str, Any] = field(default_factory=dict)
    """Measured figures (losses, accuracies, CPU time)."""
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Relative path -> {sha256, bytes} of every file in the checkpoint but the manifest."""
    format_version: int = FORMAT_VERSION
    """Version of this folder layout."""


@dataclass
class LoadedCheckpoint:
    """A generator together with where it came from."""

    generator: Generator
    manifest: Manifest | None
    path: Path


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _file_records(folder: Path) -> dict[str, dict[str, Any]]:
    records = {}
    for file in sorted(folder.rglob("*")):
        if file.is_file() and file.name != MANIFEST:
            relative = file.relative_to(folder).as_posix()
            records[relative] = {"sha256": sha256_file(file), "bytes": file.stat().st_size}
    return records


def read_manifest(folder: str | Path) -> Manifest:
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise CheckpointError(f"{folder} has no {MANIFEST}: not a vpt checkpoint")
    try:
        return config_from_dict(Manifest, json.loads(path.read_text()), MANIFEST)
    except (json.JSONDecodeError, ConfigError) as error:
        raise CheckpointError(f"{path} is not a valid manifest: {error}") from None


def verify_checkpoint(folder: str | Path) -> Manifest:
    """Check every file listed in the manifest: present, same size, same sha256."""
    root = Path(folder)
    manifest = read_manifest(root)
    if not manifest.files:
        raise CheckpointError(f"{root / MANIFEST} lists no files")
    for relative, record in manifest.files.items():
        file = root / relative
        if not file.is_file():
            raise CheckpointError(f"{root}: {relative} is listed in the manifest but missing")
        size = file.stat().st_size
        if size != record["bytes"]:
            raise CheckpointError(
                f"{root}: {relative} has {size} bytes, the manifest says {record['bytes']} "
                "(truncated or replaced); re-copy the checkpoint"
            )
        if sha256_file(file) != record["sha256"]:
            raise CheckpointError(
                f"{root}: {relative} does not match its sha256 in the manifest (modified or "
                "corrupted); re-copy the checkpoint"
            )
    return manifest


def save_checkpoint(
    generator: Generator,
    folder: str | Path,
    *,
    version: str | None = None,
    parent: str | None = None,
    stage: str = "sft",
    recipe: dict[str, Any] | None = None,
    data_seed: int | None = None,
    steps: int = 0,
    metrics: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> Manifest:
    """Write `generator` as a checkpoint folder (atomically) and return its manifest."""
    target = Path(folder)
    if target.exists() and not overwrite:
        raise CheckpointError(f"{target} already exists; pass overwrite=True to replace it")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        generator.transformer.save_pretrained(staging / "transformer", safe_serialization=True)
        codec = generator.autoencoder
        (codec if isinstance(codec, PixelSpace) else codec.model).save_pretrained(
            staging / "vae", safe_serialization=True
        )
        config = generator.config
        if config.text_encoder.path != PACKAGED_MINILM:
            config = _copy_text_encoder(generator, config, staging)
        (staging / GENERATOR_CONFIG).write_text(
            json.dumps({"format_version": FORMAT_VERSION, **config_to_dict(config)}, indent=2)
        )
        files = _file_records(staging)
        content_hash = hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()
        manifest = Manifest(
            version=version or f"{stage}-{content_hash[:12]}",
            parent=parent,
            stage=stage,
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            recipe=recipe or {},
            data_seed=data_seed,
            steps=steps,
            metrics=metrics or {},
            files=files,
        )
        (staging / MANIFEST).write_text(json.dumps(config_to_dict(manifest), indent=2))
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


def _copy_text_encoder(generator: Generator, config: GeneratorConfig, staging: Path) -> Any:
    from dataclasses import replace

    generator.text_encoder.model.save_pretrained(staging / "text_encoder")
    generator.text_encoder.tokenizer.save_pretrained(staging / "tokenizer")
    text = replace(config.text_encoder, path="text_encoder", tokenizer_path="tokenizer")
    return replace(config, text_encoder=text)


def _resolve_relative(config: GeneratorConfig, root: Path) -> GeneratorConfig:
    from dataclasses import replace

    text = config.text_encoder
    if text.path == PACKAGED_MINILM:
        return config
    path = str(root / text.path) if not Path(text.path).is_absolute() else text.path
    tokenizer = text.tokenizer_path
    if tokenizer and not Path(tokenizer).is_absolute():
        tokenizer = str(root / tokenizer)
    return replace(config, text_encoder=replace(text, path=path, tokenizer_path=tokenizer))


def load_autoencoder(folder: str | Path) -> VideoAutoencoder | PixelSpace:
    """The codec saved in `folder` (a diffusers autoencoder, or the pixel-space marker)."""
    folder = Path(folder)
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise CheckpointError(f"{folder} has no config.json: no autoencoder to load")
    class_name = json.loads(config_file.read_text()).get("_class_name")
    if class_name == PIXEL_SPACE_CLASS:
        return PixelSpace()
    classes = {"AutoencoderKL": AutoencoderKL, "AutoencoderKLWan": AutoencoderKLWan}
    if class_name not in classes:
        raise CheckpointError(f"{folder}: unsupported autoencoder class {class_name!r}")
    return VideoAutoencoder(classes[class_name].from_pretrained(folder))


def _wan_pipeline_config(root: Path) -> GeneratorConfig:
    """Defaults for a diffusers `WanPipeline` folder (Wan2.1 T2V at 480p)."""
    shift = 3.0
    scheduler = root / "scheduler" / "scheduler_config.json"
    if scheduler.is_file():
        shift = float(json.loads(scheduler.read_text()).get("flow_shift", shift))
    return GeneratorConfig(
        geometry=VideoGeometry(frames=81, height=480, width=832, fps=16),
        sampler=SamplerSettings(num_steps=50, shift=shift, guidance_scale=5.0),
        prediction="velocity",
        text_encoder=TextEncoderConfig(
            path=str(root / "text_encoder"), tokenizer_path=str(root / "tokenizer"), max_length=512
        ),
    )


def load_generator(
    folder: str | Path,
    device: torch.device | str = "cpu",
    *,
    geometry: VideoGeometry | None = None,
    text_encoder: TextEncoder | None = None,
) -> LoadedCheckpoint:
    """Load a vpt checkpoint (verified) or a diffusers Wan2.1 folder into a `Generator`."""
    root = Path(folder)
    if not root.is_dir():
        raise CheckpointError(f"checkpoint folder {root} does not exist")
    manifest: Manifest | None = None
    if (root / MANIFEST).is_file():
        manifest = verify_checkpoint(root)
        raw = json.loads((root / GENERATOR_CONFIG).read_text())
        if raw.pop("format_version", None) != FORMAT_VERSION:
            raise CheckpointError(f"{root}: {GENERATOR_CONFIG} has an unknown format_version")
        config = _resolve_relative(config_from_dict(GeneratorConfig, raw, GENERATOR_CONFIG), root)
    elif (root / "model_index.json").is_file():
        config = _wan_pipeline_config(root)
    else:
        raise CheckpointError(
            f"{root} is neither a vpt checkpoint ({MANIFEST}) nor a diffusers pipeline folder "
            "(model_index.json)"
        )
    if geometry is not None:
        from dataclasses import replace

        config = replace(config, geometry=geometry)
    try:
        transformer = WanTransformer3DModel.from_pretrained(root / "transformer")
        autoencoder = load_autoencoder(root / "vae")
    except (OSError, ValueError) as error:
        raise CheckpointError(f"{root}: could not load weights: {error}") from None
    encoder = text_encoder or TextEncoder(config.text_encoder, device)
    generator = Generator(
        transformer.to(device).eval(), autoencoder.to(device).eval(), encoder, config
    )
    return LoadedCheckpoint(generator=generator, manifest=manifest, path=root)

"""Checkpoint folders: save/load round trip, hash verification, and real Wan2.1 layouts."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from tests.tiny_models import TINY_GEOMETRY, tiny_generator, write_tiny_wan_pipeline
from vpt.checkpoint import (
    MANIFEST,
    CheckpointError,
    load_generator,
    read_manifest,
    save_checkpoint,
)
from vpt.generator import VideoGeometry


def test_round_trip_gives_identical_videos(tmp_path: Path) -> None:
    generator = tiny_generator()
    manifest = save_checkpoint(
        generator,
        tmp_path / "ckpt",
        parent="base-1",
        stage="sft",
        recipe={"lr": 1e-3},
        data_seed=7,
        steps=20,
        metrics={"loss": 0.5},
    )
    loaded = load_generator(tmp_path / "ckpt", text_encoder=generator.text_encoder)
    assert loaded.manifest == manifest
    assert manifest.parent == "base-1" and manifest.data_seed == 7 and manifest.steps == 20
    assert set(manifest.files) >= {
        "transformer/config.json",
        "vae/config.json",
        "vpt.json",
        "transformer/diffusion_pytorch_model.safetensors",
    }
    before = generator.generate(["red circle moving left"], [3])
    after = loaded.generator.generate(["red circle moving left"], [3])
    assert before.shape == (1, TINY_GEOMETRY.frames, 16, 16, 3)
    np.testing.assert_array_equal(before, after)


def test_version_is_content_addressed(tmp_path: Path) -> None:
    first = save_checkpoint(tiny_generator(seed=0), tmp_path / "a")
    same = save_checkpoint(tiny_generator(seed=0), tmp_path / "b")
    other = save_checkpoint(tiny_generator(seed=1), tmp_path / "c")
    assert first.version == same.version != other.version


@pytest.mark.parametrize("damage", ["flip_byte", "truncate", "delete"])
def test_tampered_checkpoint_is_refused(tmp_path: Path, damage: str) -> None:
    save_checkpoint(tiny_generator(), tmp_path / "ckpt")
    weights = tmp_path / "ckpt" / "transformer" / "diffusion_pytorch_model.safetensors"
    data = bytearray(weights.read_bytes())
    if damage == "flip_byte":
        data[len(data) // 2] ^= 0xFF
        weights.write_bytes(bytes(data))
    elif damage == "truncate":
        weights.write_bytes(bytes(data[: len(data) - 100]))
    else:
        weights.unlink()
    expected = {"flip_byte": "sha256", "truncate": "truncated", "delete": "missing"}[damage]
    with pytest.raises(CheckpointError, match=expected):
        load_generator(tmp_path / "ckpt")


def test_save_refuses_to_overwrite_and_leaves_no_partial_folder(tmp_path: Path) -> None:
    save_checkpoint(tiny_generator(), tmp_path / "ckpt")
    with pytest.raises(CheckpointError, match="already exists"):
        save_checkpoint(tiny_generator(), tmp_path / "ckpt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_not_a_checkpoint_is_explained(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="neither a vpt checkpoint"):
        load_generator(tmp_path / "empty")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_generator(tmp_path / "nowhere")
    save_checkpoint(tiny_generator(), tmp_path / "ckpt")
    (tmp_path / "ckpt" / MANIFEST).write_text("{not json")
    with pytest.raises(CheckpointError, match="not a valid manifest"):
        read_manifest(tmp_path / "ckpt")


def test_wan_pipeline_folder_loads_and_resaves(tmp_path: Path) -> None:
    """A diffusers Wan2.1 folder (UMT5 + AutoencoderKLWan + Wan transformer) loads through the
    same code, generates, and survives a save/load as a verified vpt checkpoint."""
    write_tiny_wan_pipeline(tmp_path / "wan")
    geometry = VideoGeometry(frames=5, height=16, width=16, fps=16)
    loaded = load_generator(tmp_path / "wan", geometry=geometry)
    generator = loaded.generator
    assert loaded.manifest is None
    assert generator.config.sampler.shift == 3.0
    assert generator.latent_shape() == (4, 2, 2, 2)
    video = generator.generate(["a cat"], [1], generator.config.sampler.__class__(2, 3.0, 2.0))
    assert video.shape == (1, 5, 16, 16, 3) and video.dtype == np.uint8

    save_checkpoint(generator, tmp_path / "vpt-ckpt", parent="wan2.1-tiny")
    saved = json.loads((tmp_path / "vpt-ckpt" / "vpt.json").read_text())
    assert saved["text_encoder"]["path"] == "text_encoder"
    reloaded = load_generator(tmp_path / "vpt-ckpt").generator
    again = reloaded.generate(["a cat"], [1], generator.config.sampler.__class__(2, 3.0, 2.0))
    np.testing.assert_array_equal(video, again)


def test_pixel_space_generator_round_trips(tmp_path: Path) -> None:
    import torch

    from tests.tiny_models import TINY_TRANSFORMER, minilm
    from vpt.generator import Generator, GeneratorConfig, SamplerSettings
    from vpt.models.autoencoder import PixelSpace
    from vpt.models.text_encoder import TextEncoderConfig
    from vpt.models.transformer import build_transformer

    torch.manual_seed(0)
    config = GeneratorConfig(
        geometry=TINY_GEOMETRY,
        sampler=SamplerSettings(2, 3.0, 1.0),
        prediction="sample",
        text_encoder=TextEncoderConfig(max_length=16),
    )
    transformer = build_transformer(replace(TINY_TRANSFORMER, in_channels=3, out_channels=3))
    generator = Generator(transformer, PixelSpace(), minilm(), config).eval()
    assert generator.latent_shape() == (3, TINY_GEOMETRY.frames, 16, 16)
    save_checkpoint(generator, tmp_path / "pix")
    loaded = load_generator(tmp_path / "pix", text_encoder=generator.text_encoder).generator
    assert isinstance(loaded.autoencoder, PixelSpace)
    np.testing.assert_array_equal(
        generator.generate(["cyan square"], [2]), loaded.generate(["cyan square"], [2])
    )

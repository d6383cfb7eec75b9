"""Training stages at tiny configs: the autoencoder and SFT learn, and resume is bit-exact."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.tiny_models import TINY_AUTOENCODER, TINY_GEOMETRY, TINY_TRANSFORMER
from vpt.checkpoint import load_generator
from vpt.generator import GeneratorConfig, SamplerSettings
from vpt.models.text_encoder import TextEncoderConfig
from vpt.sampling import TimestepSamplingConfig
from vpt.training.autoencoder import AutoencoderTrainingConfig, train_autoencoder
from vpt.training.latent_data import LatentDataConfig, build_latent_dataset
from vpt.training.loop import LoopConfig, OptimConfig
from vpt.training.sft import SFTConfig, build_generator, make_loss_fn, run_sft
from vpt.world import WorldConfig

TINY_WORLD = WorldConfig(frames=TINY_GEOMETRY.frames, height=16, width=16)


@pytest.fixture(scope="module")
def autoencoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("ae")
    config = AutoencoderTrainingConfig(
        world=TINY_WORLD,
        model=TINY_AUTOENCODER,
        clips_per_step=4,
        frames_per_clip=2,
        statistics_clips=8,
        optim=OptimConfig(lr=1e-3, warmup_steps=2, ema_decay=0.0),
        loop=LoopConfig(steps=6, log_every=2, save_every=3),
    )
    train_autoencoder(config, run)
    return run / "vae"


def tiny_sft_config(autoencoder: Path, steps: int = 20, **loop: int) -> SFTConfig:
    return SFTConfig(
        data=LatentDataConfig(world=TINY_WORLD, seed=0, num_clips=64),
        autoencoder=str(autoencoder),
        transformer=TINY_TRANSFORMER,
        generator=GeneratorConfig(
            geometry=TINY_GEOMETRY,
            sampler=SamplerSettings(num_steps=2, guidance_scale=2.0),
            text_encoder=TextEncoderConfig(max_length=16),
        ),
        timesteps=TimestepSamplingConfig(kind="logit_normal"),
        batch_size=8,
        optim=OptimConfig(lr=3e-3, warmup_steps=2, ema_decay=0.9),
        loop=LoopConfig(steps=steps, seed=3, log_every=5, save_every=5, **loop),
        eval_prompts=4,
    )


def test_autoencoder_run_saves_normalised_latents(autoencoder_dir: Path) -> None:
    summary = json.loads((autoencoder_dir / "training.json").read_text())
    assert summary["steps"] == 6
    config = json.loads((autoencoder_dir / "config.json").read_text())
    assert len(config["latents_std"]) == TINY_AUTOENCODER.latent_channels
    assert all(s > 0 for s in config["latents_std"])
    lines = (autoencoder_dir.parent / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in lines] == [2, 4, 6]


def probe_loss(config: SFTConfig, transformer_state: dict[str, torch.Tensor] | None) -> float:
    """Flow-matching loss of a fixed batch with fixed noise (deterministic)."""
    generator, _ = build_generator(config)
    if transformer_state is not None:
        generator.transformer.load_state_dict(transformer_state)
    dataset = build_latent_dataset(config.data, generator.autoencoder, Path("/tmp/vpt-probe"))
    loss_fn = make_loss_fn(replace(config, caption_dropout=0.0), generator, dataset)
    with torch.no_grad():
        losses = [float(loss_fn(step, torch.Generator().manual_seed(step))[0]) for step in range(4)]
    return sum(losses) / len(losses)


def test_twenty_sft_steps_lower_the_loss(autoencoder_dir: Path, tmp_path: Path) -> None:
    config = tiny_sft_config(autoencoder_dir)
    before = probe_loss(config, None)
    checkpoint = run_sft(config, tmp_path / "run")
    assert checkpoint is not None
    trained = load_generator(checkpoint).generator.transformer.state_dict()
    after = probe_loss(config, trained)
    assert after < 0.9 * before, (before, after)
    manifest = json.loads((checkpoint / "manifest.json").read_text())
    assert manifest["steps"] == 20 and manifest["recipe"]["batch_size"] == 8
    assert "eval_all_correct" in manifest["metrics"]


def test_resume_after_interruption_is_bit_exact(autoencoder_dir: Path, tmp_path: Path) -> None:
    straight = tiny_sft_config(autoencoder_dir, steps=12)
    run_sft(straight, tmp_path / "straight")
    # Stop 2 steps after the save at step 5 (as a kill would), then resume to the end.
    assert (
        run_sft(tiny_sft_config(autoencoder_dir, steps=12, stop_after=7), tmp_path / "resumed")
        is None
    )
    assert json.loads((tmp_path / "resumed" / "state" / "info.json").read_text())["step"] == 5
    run_sft(straight, tmp_path / "resumed")
    for name in ("model.safetensors",):
        a = load_file(tmp_path / "straight" / "state" / name)
        b = load_file(tmp_path / "resumed" / "state" / name)
        assert a.keys() == b.keys()
        for key in a:
            assert torch.equal(a[key], b[key]), key
    ema_a = torch.load(tmp_path / "straight" / "state" / "trainer.pt", weights_only=False)
    ema_b = torch.load(tmp_path / "resumed" / "state" / "trainer.pt", weights_only=False)
    for key, value in ema_a["ema"].items():
        assert torch.equal(torch.as_tensor(value), torch.as_tensor(ema_b["ema"][key])), key
    steps_a = [
        json.loads(x)["step"]
        for x in (tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()
        if "loss" in x
    ]
    losses_a = [
        json.loads(x)["loss"]
        for x in (tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()
        if "loss" in x
    ]
    losses_b = [
        json.loads(x)["loss"]
        for x in (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()
        if "loss" in x
    ]
    assert steps_a == [5, 10, 12] and losses_a == losses_b


def test_changed_recipe_refuses_to_reuse_a_run_folder(
    autoencoder_dir: Path, tmp_path: Path
) -> None:
    run_sft(tiny_sft_config(autoencoder_dir, steps=5), tmp_path / "run")
    saved = (tmp_path / "run" / "config.json").read_text()
    changed = replace(tiny_sft_config(autoencoder_dir, steps=5), batch_size=4)
    with pytest.raises(ValueError, match=r"different recipe \(changed: batch_size\)"):
        run_sft(changed, tmp_path / "run")
    assert (tmp_path / "run" / "config.json").read_text() == saved
    # Changing only the loop (e.g. stopping early at the last save) is allowed.
    loop_only = tiny_sft_config(autoencoder_dir, steps=5)
    loop_only = replace(loop_only, loop=replace(loop_only.loop, log_every=1))
    assert run_sft(loop_only, tmp_path / "run") is not None
    # So is changing the sampling defaults the checkpoint ships with: training never reads them.
    sampler_only = tiny_sft_config(autoencoder_dir, steps=5)
    generator = replace(
        sampler_only.generator, sampler=replace(sampler_only.generator.sampler, anchor_steps=1)
    )
    checkpoint = run_sft(replace(sampler_only, generator=generator), tmp_path / "run")
    assert checkpoint is not None
    loaded = load_generator(checkpoint)
    assert loaded.generator.config.sampler.anchor_steps == 1
    # A run finished again at its end still reports the loss it logged last.
    logged = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert loaded.manifest is not None
    assert loaded.manifest.metrics["final_loss"] == [r["loss"] for r in logged if "loss" in r][-1]

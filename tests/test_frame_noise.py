"""Diffusion-Forcing per-frame noise levels in SFT: the sigmas land on the right frames (in the
noised input and in the transformer's timestep embedding), and with the option off an SFT step
is bit-identical to the one-sigma-per-clip step."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from torch import Tensor

from tests.tiny_models import TINY_TRANSFORMER, tiny_generator
from vpt.models.transformer import TIMESTEP_SCALE, build_transformer, predict_velocity
from vpt.sampling import TimestepSamplingConfig, sample_training_sigmas
from vpt.training.flow_matching import noisy_latents
from vpt.training.frame_noise import FrameNoiseConfig, per_frame_sigmas
from vpt.training.latent_data import LatentDataConfig, LatentDataset
from vpt.training.sft import SFTConfig, _check_resumable, make_loss_fn

PER_FRAME_TRANSFORMER = replace(TINY_TRANSFORMER, patch_size=(1, 2, 2))
"""One latent frame per transformer frame, so a 4-frame latent has T = 4."""
TIMESTEPS = TimestepSamplingConfig(kind="logit_normal", shift=3.0)


def test_noisy_latents_apply_each_sigma_to_its_frame_group() -> None:
    x0 = torch.randn(2, 3, 6, 2, 2)
    noise = torch.randn(2, 3, 6, 2, 2)
    sigma_BT = torch.tensor([[0.1, 0.5, 0.9], [0.0, 1.0, 0.3]])
    noised = noisy_latents(x0, noise, sigma_BT)
    for b in range(2):
        for t in range(3):
            group = slice(2 * t, 2 * t + 2)
            s = float(sigma_BT[b, t])
            expected = (1 - s) * x0[b, :, group] + s * noise[b, :, group]
            torch.testing.assert_close(noised[b, :, group], expected)
    with pytest.raises(ValueError, match="T dividing the 6 frames"):
        noisy_latents(x0, noise, torch.rand(2, 4))


def test_per_frame_sigmas_off_keeps_the_clip_sigma() -> None:
    sigma_B = torch.tensor([0.2, 0.7, 0.95])
    rng = torch.Generator().manual_seed(0)
    sigma_BT = per_frame_sigmas(sigma_B, 4, FrameNoiseConfig(fraction=0.0), TIMESTEPS, rng)
    assert torch.equal(sigma_BT, sigma_B[:, None].expand(3, 4))


def test_clean_prefix_is_low_before_a_cut_and_the_clip_sigma_after() -> None:
    sigma_B = torch.full((64,), 0.9)
    config = FrameNoiseConfig(fraction=1.0, kind="clean_prefix", prefix_sigma_max=0.1)
    sigma_BT = per_frame_sigmas(sigma_B, 4, config, TIMESTEPS, torch.Generator().manual_seed(1))
    is_low = sigma_BT <= 0.1
    cuts = is_low.sum(1)
    assert cuts.min() >= 1 and cuts.max() <= 3  # at least one clean and one noisy frame
    assert set(cuts.tolist()) == {1, 2, 3}
    for row, cut in zip(sigma_BT, cuts.tolist(), strict=True):
        assert bool((row[:cut] <= 0.1).all()) and bool((row[:cut] > 0).all())
        assert bool((row[cut:] == 0.9).all())  # a prefix, not scattered frames


def test_fraction_selects_rows_and_independent_draws_per_frame() -> None:
    sigma_B = torch.full((400,), 0.5)
    config = FrameNoiseConfig(fraction=0.25, kind="independent")
    sigma_BT = per_frame_sigmas(sigma_B, 4, config, TIMESTEPS, torch.Generator().manual_seed(2))
    is_per_frame = (sigma_BT != 0.5).any(1)
    assert 0.18 < float(is_per_frame.float().mean()) < 0.32
    chosen = sigma_BT[is_per_frame]
    assert bool((chosen > 0).all()) and bool((chosen < 1).all())
    assert bool((chosen.std(1) > 0).all())  # every frame of a chosen row has its own sigma


def test_frame_noise_config_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="fraction must be in"):
        FrameNoiseConfig(fraction=1.5).validate()
    with pytest.raises(ValueError, match="prefix_sigma_max"):
        FrameNoiseConfig(fraction=0.5, prefix_sigma_max=1.0).validate()
    with pytest.raises(ValueError, match="at least 2 transformer frames"):
        per_frame_sigmas(
            torch.rand(2), 1, FrameNoiseConfig(fraction=1.0), TIMESTEPS, torch.Generator()
        )


def _capture_block_modulation(model: torch.nn.Module) -> tuple[list[Tensor], object]:
    captured: list[Tensor] = []

    def hook(_module: torch.nn.Module, args: tuple[Tensor, ...]) -> None:
        captured.append(args[2].detach())  # (hidden, text, temb, rotary)

    return captured, model.blocks[0].register_forward_pre_hook(hook)  # type: ignore[index]


@torch.no_grad()
def test_transformer_gets_each_frames_timestep_on_that_frames_tokens() -> None:
    torch.manual_seed(0)
    model = build_transformer(PER_FRAME_TRANSFORMER).eval()
    latents = torch.randn(2, 4, 4, 8, 8)  # T = 4 transformer frames of 4 x 4 = 16 tokens
    text = torch.randn(2, 5, 384)
    sigma_BT = torch.tensor([[0.05, 0.3, 0.6, 0.95], [0.9, 0.9, 0.1, 0.5]])
    captured, handle = _capture_block_modulation(model)
    predict_velocity(model, latents, sigma_BT, text)
    handle.remove()  # type: ignore[attr-defined]
    modulation_BN6D = captured[0]
    assert modulation_BN6D.shape[:3] == (2, 64, 6)
    for b in range(2):
        for t in range(4):
            timestep = sigma_BT[b, t : t + 1] * TIMESTEP_SCALE
            _, expected, _, _ = model.condition_embedder(timestep, text[b : b + 1], None)
            expected_6D = expected.unflatten(1, (6, -1))[0]
            for token in range(16 * t, 16 * (t + 1)):
                torch.testing.assert_close(modulation_BN6D[b, token], expected_6D)


@torch.no_grad()
def test_per_frame_output_modulation_matches_the_single_sigma_model_frame_by_frame() -> None:
    """With no blocks the output of a frame depends only on that frame and its sigma, so a
    per-frame sigma must give, on frame t, exactly the output of sigma_t on the whole clip."""
    torch.manual_seed(1)
    model = build_transformer(replace(PER_FRAME_TRANSFORMER, num_layers=0)).eval()
    latents = torch.randn(1, 4, 4, 8, 8)
    text = torch.randn(1, 5, 384)
    sigmas = [0.1, 0.4, 0.7, 0.99]
    for prediction in ("velocity", "sample"):
        per_frame = predict_velocity(model, latents, torch.tensor([sigmas]), text, prediction)
        for t, sigma in enumerate(sigmas):
            whole = predict_velocity(model, latents, torch.tensor([sigma]), text, prediction)
            torch.testing.assert_close(per_frame[:, :, t], whole[:, :, t])


@torch.no_grad()
def test_equal_per_frame_sigmas_match_one_sigma_and_bad_shapes_are_refused() -> None:
    torch.manual_seed(2)
    model = build_transformer(PER_FRAME_TRANSFORMER).eval()
    latents = torch.randn(2, 4, 4, 8, 8)
    text = torch.randn(2, 5, 384)
    sigma_B = torch.tensor([0.3, 0.8])
    one = predict_velocity(model, latents, sigma_B, text)
    per_frame = predict_velocity(model, latents, sigma_B[:, None].expand(2, 4), text)
    torch.testing.assert_close(per_frame, one)
    with pytest.raises(ValueError, match=r"\(2,\) or \(2, 4\)"):
        predict_velocity(model, latents, torch.rand(2, 3), text)


def _sft_config(frame_noise: FrameNoiseConfig) -> SFTConfig:
    return SFTConfig(
        data=LatentDataConfig(seed=0, num_clips=16),
        timesteps=TIMESTEPS,
        frame_noise=frame_noise,
        caption_dropout=0.25,
        batch_size=8,
    )


def _dataset(generator_latent_shape: tuple[int, int, int, int]) -> LatentDataset:
    latents = torch.randn(16, *generator_latent_shape, generator=torch.Generator().manual_seed(3))
    colors = ["red", "blue", "green", "white"]
    captions = [f"a {colors[i % 4]} circle moving left" for i in range(16)]
    return LatentDataset(latents.half(), captions)


def _loss_before_frame_noise(
    config: SFTConfig, generator: object, dataset: LatentDataset, step: int, rng: torch.Generator
) -> Tensor:
    """The SFT loss as computed before per-frame noise existed (one sigma per clip)."""
    indices = dataset.batch_indices(step, config.batch_size, config.data.seed)
    x0 = dataset.get(indices)
    drop = torch.rand(len(indices), generator=rng) < config.caption_dropout
    captions = [
        "" if dropped else dataset.captions[int(i)]
        for i, dropped in zip(indices, drop.tolist(), strict=True)
    ]
    text = generator.encode_prompts(captions)  # type: ignore[attr-defined]
    sigma_B = sample_training_sigmas(len(indices), config.timesteps, rng)
    noise = torch.randn(x0.shape, generator=rng)
    x_sigma = (1 - sigma_B.view(-1, 1, 1, 1, 1)) * x0 + sigma_B.view(-1, 1, 1, 1, 1) * noise
    predicted = predict_velocity(generator.transformer, x_sigma, sigma_B, text)  # type: ignore[attr-defined]
    return (predicted - (noise - x0)).pow(2).flatten(1).mean(1).mean()


def test_sft_step_with_the_option_off_is_bit_identical_and_on_changes_it() -> None:
    generator = tiny_generator(seed=4)
    dataset = _dataset(generator.latent_shape())
    off = _sft_config(FrameNoiseConfig())
    loss_off, _ = make_loss_fn(off, generator, dataset)(1, torch.Generator().manual_seed(7))
    reference = _loss_before_frame_noise(
        off, generator, dataset, 1, torch.Generator().manual_seed(7)
    )
    assert torch.equal(loss_off, reference)

    on = _sft_config(FrameNoiseConfig(fraction=1.0, kind="clean_prefix"))
    loss_on, _ = make_loss_fn(on, generator, dataset)(1, torch.Generator().manual_seed(7))
    assert not torch.equal(loss_on, reference)
    assert torch.isfinite(loss_on)


def test_a_run_folder_from_before_the_option_still_resumes(tmp_path: Path) -> None:
    from vpt.config import config_to_dict

    config = _sft_config(FrameNoiseConfig())
    saved = config_to_dict(config)
    del saved["frame_noise"]
    (tmp_path / "config.json").write_text(json.dumps(saved))
    _check_resumable(tmp_path / "config.json", config)  # no error: the default is assumed
    with pytest.raises(ValueError, match="changed: frame_noise"):
        _check_resumable(tmp_path / "config.json", replace(config, frame_noise=FrameNoiseConfig(1)))

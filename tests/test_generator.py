"""The generator bundle: per-seed determinism, CFG, prompt cache, pixel conversions."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import vpt.generator as generator_module
from tests.tiny_models import TINY_TRANSFORMER, tiny_generator
from vpt.generator import Generator, SamplerSettings, pixels_to_uint8, uint8_to_pixels
from vpt.models.transformer import append_position_channels, build_transformer


def test_video_depends_on_its_own_seed_not_on_the_batch() -> None:
    generator = tiny_generator()
    alone = generator.generate(["blue square moving up"], [5])
    batched = generator.generate(["red circle", "blue square moving up", "x"], [1, 5, 9])
    np.testing.assert_array_equal(alone[0], batched[1])
    assert not np.array_equal(batched[0], batched[2])


def test_guidance_changes_the_output_and_one_disables_it() -> None:
    generator = tiny_generator()
    plain = generator.generate(["red circle"], [0], SamplerSettings(3, 3.0, 1.0))
    guided = generator.generate(["red circle"], [0], SamplerSettings(3, 3.0, 4.0))
    assert not np.array_equal(plain, guided)


def test_prompt_cache_survives_eviction_inside_one_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(generator_module, "TEXT_CACHE_SIZE", 3)
    generator = tiny_generator()
    first = generator.encode_prompts(["a", "b", "c"])
    second = generator.encode_prompts(["d", "e", "a"])
    torch.testing.assert_close(first[0], second[2])
    assert len(generator._text_cache) <= 4


def test_two_pass_sampling_anchors_the_main_pass_on_the_first_pass_frame() -> None:
    generator = tiny_generator()
    prompts, seeds = ["red circle moving left", "blue square"], [3, 4]
    one_pass = SamplerSettings(3, 3.0, 2.0)
    first_pass = generator.generate_latents(prompts, seeds, SamplerSettings(2, 3.0, 2.0))
    steps: list[int] = []
    two_pass = generator.generate_latents(
        prompts,
        seeds,
        dataclasses.replace(one_pass, anchor_steps=2),
        on_step=lambda index, _x: steps.append(index),
    )
    assert steps == [0, 1, 2, 3, 4]  # both passes, counted on
    assert torch.equal(two_pass[:, :, :1], first_pass[:, :, :1])
    # The main pass is image-to-video from the seed's second noise draw, by hand:
    text = generator.encode_prompts(prompts)
    negative = generator.encode_prompts([generator.config.negative_prompt] * 2)
    velocity = generator.guided_velocity_fn(text, negative, 2.0)
    x = generator.initial_noise(seeds, draw=1)
    assert not torch.equal(x, generator.initial_noise(seeds))
    sigmas = generator_module.sampling_sigmas(3, 3.0)
    for i in range(3):
        x[:, :, :1] = first_pass[:, :, :1]
        x = x + (sigmas[i + 1] - sigmas[i]) * velocity(x, sigmas[i].expand(2))
    x[:, :, :1] = first_pass[:, :, :1]
    torch.testing.assert_close(two_pass, x)
    # anchor_steps 0 is the one-pass sampler, unchanged.
    torch.testing.assert_close(
        generator.generate_latents(prompts, seeds, one_pass),
        generator.generate_latents(prompts, seeds, dataclasses.replace(one_pass, anchor_steps=0)),
    )


def test_bad_sampler_settings_are_rejected() -> None:
    generator = tiny_generator()
    with pytest.raises(ValueError, match="num_steps"):
        generator.generate(["red circle"], [0], SamplerSettings(0, 3.0, 1.0))
    with pytest.raises(ValueError, match=r"anchor_steps must be in 0\.\.1000"):
        generator.generate(["red circle"], [0], SamplerSettings(3, 3.0, 1.0, anchor_steps=-1))
    with pytest.raises(ValueError, match="2 prompts but 1 seeds"):
        generator.generate_latents(["a", "b"], [0])


def test_pixel_conversion_round_trips() -> None:
    frames = np.random.default_rng(0).integers(0, 256, (2, 3, 4, 5, 3), dtype=np.uint8)
    np.testing.assert_array_equal(pixels_to_uint8(uint8_to_pixels(frames)), frames)


def test_position_channels_give_each_frame_its_coordinate_in_the_whole_clip() -> None:
    latents = torch.zeros(2, 4, 8, 3, 5)
    full = append_position_channels(latents)
    assert full.shape == (2, 7, 8, 3, 5)
    assert torch.equal(full[:, :4], latents)
    frame, row, column = full[0, 4], full[0, 5], full[0, 6]
    assert frame[0].eq(-1).all() and frame[-1].eq(1).all()
    assert row[:, 0].eq(-1).all() and row[:, -1].eq(1).all()
    assert column[:, :, 0].eq(-1).all() and column[:, :, -1].eq(1).all()
    # A later chunk generated on its own gets the coordinates it has in the whole clip.
    chunk = append_position_channels(latents[:, :, 4:6], frame_offset=4, reference_frames=8)
    torch.testing.assert_close(chunk, full[:, :, 4:6])


def test_position_channels_must_match_the_transformers_input_width() -> None:
    generator = tiny_generator()
    config = dataclasses.replace(generator.config, use_position_channels=True)
    with pytest.raises(ValueError, match=r"set transformer\.in_channels to 7"):
        Generator(generator.transformer, generator.autoencoder, generator.text_encoder, config)
    wide = build_transformer(dataclasses.replace(TINY_TRANSFORMER, in_channels=7))
    positioned = Generator(wide, generator.autoencoder, generator.text_encoder, config).eval()
    video = positioned.generate(["red circle"], seeds=[0])
    assert video.shape == (1, 4, 16, 16, 3)

"""The generator bundle: per-seed determinism, CFG, prompt cache, pixel conversions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import vpt.generator as generator_module
from tests.tiny_models import tiny_generator
from vpt.generator import SamplerSettings, pixels_to_uint8, uint8_to_pixels


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


def test_bad_sampler_settings_are_rejected() -> None:
    generator = tiny_generator()
    with pytest.raises(ValueError, match="num_steps"):
        generator.generate(["red circle"], [0], SamplerSettings(0, 3.0, 1.0))
    with pytest.raises(ValueError, match="2 prompts but 1 seeds"):
        generator.generate_latents(["a", "b"], [0])


def test_pixel_conversion_round_trips() -> None:
    frames = np.random.default_rng(0).integers(0, 256, (2, 3, 4, 5, 3), dtype=np.uint8)
    np.testing.assert_array_equal(pixels_to_uint8(uint8_to_pixels(frames)), frames)

"""First-frame conditioning in SFT (`first_frame_fraction`): the chosen samples see their clean
first latent frame, that frame is out of their loss, the rest of the loss is the plain one, and
with the option off a step is bit-identical to the step without it."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from torch import Tensor

from tests.test_frame_noise import _dataset, _loss_before_frame_noise, _sft_config
from tests.tiny_models import tiny_generator
from vpt.config import config_to_dict
from vpt.training.flow_matching import flow_matching_loss, noisy_latents
from vpt.training.frame_noise import FrameNoiseConfig
from vpt.training.sft import SFTConfig, _check_resumable, make_loss_fn


class Recorder:
    """A velocity model that returns a fixed prediction and keeps its input."""

    def __init__(self, prediction: Tensor) -> None:
        self.prediction = prediction
        self.seen: Tensor | None = None

    def __call__(self, x: Tensor, sigma: Tensor) -> Tensor:
        self.seen = x.clone()
        return self.prediction


def test_clean_first_frame_is_in_the_input_and_out_of_the_loss() -> None:
    generator = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(3, 2, 5, 4, 4, generator=generator), torch.randn(3, 2, 5, 4, 4)
    sigma = torch.tensor([0.9, 0.5, 0.99])
    chosen = torch.tensor([True, False, True])
    prediction = torch.randn(3, 2, 5, 4, 4, generator=generator)
    model = Recorder(prediction)
    losses = flow_matching_loss(model, x0, noise, sigma, chosen)
    noised = noisy_latents(x0, noise, sigma)
    assert model.seen is not None
    assert torch.equal(model.seen[chosen, :, :1], x0[chosen, :, :1])
    assert torch.equal(model.seen[:, :, 1:], noised[:, :, 1:])
    assert torch.equal(model.seen[~chosen], noised[~chosen])
    error = (prediction - (noise - x0)).pow(2)
    torch.testing.assert_close(losses[0], error[0, :, 1:].mean())
    torch.testing.assert_close(losses[1], error[1].mean())
    # what the model predicts for a given clean frame does not matter
    changed = prediction.clone()
    changed[chosen, :, :1] += 10.0
    assert torch.equal(flow_matching_loss(Recorder(changed), x0, noise, sigma, chosen), losses)
    plain = flow_matching_loss(Recorder(prediction), x0, noise, sigma)
    torch.testing.assert_close(plain, error.flatten(1).mean(1))


@pytest.mark.parametrize(
    ("option", "off", "on"),
    [
        ("first_frame_fraction", 0.0, {"first_frame_fraction": 1.0}),
        ("object_weight", 1.0, {"object_weight": 5.0, "object_threshold": 0.5}),
    ],
)
def test_sft_step_with_an_option_off_is_bit_identical_and_on_changes_it(
    option: str, off: float, on: dict[str, float]
) -> None:
    """First-frame conditioning and the object-weighted loss (tests/test_object_weighting.py)
    leave the step as it was when off, and change it when on."""
    generator = tiny_generator(seed=4)
    dataset = _dataset(generator.latent_shape())
    config = _sft_config(FrameNoiseConfig())
    assert getattr(config, option) == off
    loss_off, _ = make_loss_fn(config, generator, dataset)(1, torch.Generator().manual_seed(7))
    reference = _loss_before_frame_noise(
        config, generator, dataset, 1, torch.Generator().manual_seed(7)
    )
    assert torch.equal(loss_off, reference)
    changed = replace(config, **on)
    loss_on, _ = make_loss_fn(changed, generator, dataset)(1, torch.Generator().manual_seed(7))
    assert torch.isfinite(loss_on) and not torch.equal(loss_on, reference)


def test_first_frame_fraction_is_validated() -> None:
    with pytest.raises(ValueError, match="first_frame_fraction"):
        SFTConfig(first_frame_fraction=1.5)


def test_a_run_folder_from_before_these_options_still_resumes(tmp_path: Path) -> None:
    config = _sft_config(FrameNoiseConfig())
    saved = config_to_dict(config)
    del saved["first_frame_fraction"]
    for key in ("high_noise_fraction", "high_noise_min"):
        del saved["timesteps"][key]
    (tmp_path / "config.json").write_text(json.dumps(saved))
    _check_resumable(tmp_path / "config.json", config)  # no error: the defaults are assumed
    with pytest.raises(ValueError, match="changed: timesteps"):
        mixed = replace(config.timesteps, high_noise_fraction=0.5)
        _check_resumable(tmp_path / "config.json", replace(config, timesteps=mixed))
    with pytest.raises(ValueError, match="changed: first_frame_fraction"):
        _check_resumable(tmp_path / "config.json", replace(config, first_frame_fraction=0.5))

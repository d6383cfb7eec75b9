"""Object-weighted SFT loss (`object_weight`): the foreground mask finds the object in latent
space and the weighted loss is the weighted mean it claims to be. That a step with the option off
is bit-identical to one without it is tested with first-frame conditioning's
(tests/test_first_frame_conditioning.py)."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from vpt.training.flow_matching import flow_matching_loss, foreground_weights
from vpt.training.sft import SFTConfig


def _clip_with_object() -> tuple[Tensor, Tensor]:
    """Latents `(2, 4, 3, 6, 6)`: a flat background per frame, plus a 2x2 object that moves
    one position right per frame; and the object's true mask `(2, 1, 3, 6, 6)`."""
    background = torch.tensor([[0.5, -1.0, 0.2, 0.0], [-0.3, 0.4, 1.0, -0.8]])
    x0 = background[:, :, None, None, None].expand(2, 4, 3, 6, 6).clone()
    x0 += 0.05 * torch.randn(x0.shape, generator=torch.Generator().manual_seed(0))
    mask = torch.zeros(2, 1, 3, 6, 6, dtype=torch.bool)
    for frame in range(3):
        mask[:, :, frame, 2:4, 1 + frame : 3 + frame] = True
    x0 = torch.where(mask, x0 + torch.tensor([3.0, -2.0, 1.0, 2.5])[None, :, None, None, None], x0)
    return x0, mask


def test_foreground_weights_mark_the_object_and_only_it() -> None:
    x0, mask = _clip_with_object()
    weights = foreground_weights(x0, object_weight=5.0, threshold=1.0)
    assert weights.shape == (2, 1, 3, 6, 6)
    assert torch.equal(weights == 5.0, mask) and torch.equal(weights == 1.0, ~mask)
    assert torch.equal(foreground_weights(x0, 1.0, 1.0), torch.ones_like(weights))
    with pytest.raises(ValueError, match="object_weight"):
        foreground_weights(x0, 0.5, 1.0)
    with pytest.raises(ValueError, match="threshold"):
        foreground_weights(x0, 5.0, 0.0)


def test_weighted_loss_is_the_weighted_mean_and_composes_with_a_clean_first_frame() -> None:
    x0, mask = _clip_with_object()
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(1))
    sigma = torch.tensor([0.3, 0.8])
    prediction = torch.randn(x0.shape, generator=torch.Generator().manual_seed(2))
    weights = foreground_weights(x0, 4.0, 1.0)
    losses = flow_matching_loss(lambda x, s: prediction, x0, noise, sigma, None, weights)
    error = (prediction - (noise - x0)).pow(2)
    full = weights.expand_as(error)
    torch.testing.assert_close(losses, (error * full).flatten(1).sum(1) / full.flatten(1).sum(1))
    # an error on the object alone counts 4x what it counts unweighted, relative to the total
    object_only = torch.where(mask, prediction, noise - x0)
    weighted = flow_matching_loss(lambda x, s: object_only, x0, noise, sigma, None, weights)
    plain = flow_matching_loss(lambda x, s: object_only, x0, noise, sigma)
    share = mask.float().flatten(1).mean(1)
    torch.testing.assert_close(weighted / plain, 4.0 / (1.0 + 3.0 * share))
    first = torch.tensor([True, False])
    both = flow_matching_loss(lambda x, s: prediction, x0, noise, sigma, first, weights)
    kept = full.clone()
    kept[0, :, :1] = 0.0
    torch.testing.assert_close(both[0], (error[0] * kept[0]).sum() / kept[0].sum())
    torch.testing.assert_close(both[1], losses[1])


def test_object_weight_options_are_validated() -> None:
    with pytest.raises(ValueError, match="object_weight"):
        SFTConfig(object_weight=0.0)
    with pytest.raises(ValueError, match="object_threshold"):
        SFTConfig(object_threshold=-1.0)

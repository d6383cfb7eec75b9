"""Known answers for the GRPO math: advantages, TGR weights, the clipped loss and the KL."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vpt.sampling import SDEConfig, sde_step
from vpt.training.grpo import (
    AdvantageConfig,
    PolicyLossConfig,
    clipped_policy_loss,
    compute_advantages,
    kl_to_reference,
    tgr_weights,
)

# Flash-GRPO's hard-coded coe = 1 / c for Wan2.1's 20-step shift-3 grid, first 10 steps.
FLASH_GRPO_COE = [7.4770, 7.0414, 6.6112, 6.1867, 5.7682, 5.3559, 4.9502, 4.5513, 4.1596, 3.7754]


def _wan_gradient_scales(indices: list[int]) -> torch.Tensor:
    uniform = torch.linspace(0.999, 0.0, 21, dtype=torch.float64)[:-1]
    grid = torch.cat([3 * uniform / (1 + 2 * uniform), torch.zeros(1, dtype=torch.float64)])
    config = SDEConfig(schedule="flash_grpo", noise_level=grid[1].item())
    x = torch.zeros(1, 8)
    scales = [
        sde_step(x, x, grid[k].item(), grid[k + 1].item(), config, torch.Generator()).gradient_scale
        for k in indices
    ]
    return torch.cat(scales)


def test_advantages_have_zero_mean_per_group_and_the_textbook_values() -> None:
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(3), 4)
    scores = {"a": rng.normal(size=12), "b": rng.normal(size=12) * 10}
    result = compute_advantages(
        scores, groups, {"a": 1.0, "b": 0.5}, AdvantageConfig(std_scope="group", clip=100.0)
    )
    for group in range(3):
        assert abs(result.values[groups == group].mean()) < 1e-12
    members = groups == 1
    expected = sum(
        weight
        * (scores[name][members] - scores[name][members].mean())
        / scores[name][members].std()
        for name, weight in (("a", 1.0), ("b", 0.5))
    )
    np.testing.assert_allclose(result.values[members], expected, rtol=1e-12)
    assert result.is_kept.all()


def test_global_std_divides_by_the_spread_of_the_whole_batch() -> None:
    groups = np.array([0, 0, 1, 1])
    scores = {"r": np.array([0.0, 2.0, 10.0, 14.0])}
    result = compute_advantages(scores, groups, {"r": 1.0}, AdvantageConfig(std_scope="global"))
    centred = np.array([-1.0, 1.0, -2.0, 2.0])
    np.testing.assert_allclose(result.values, centred / centred.std())


def test_zero_spread_groups_are_dropped_and_advantages_clipped() -> None:
    groups = np.array([0, 0, 0, 1, 1, 1])
    scores = {"r": np.array([0.5, 0.5, 0.5, 0.0, 0.0, 9.0])}
    result = compute_advantages(scores, groups, {"r": 1.0}, AdvantageConfig("group", clip=1.0))
    assert result.is_kept.tolist() == [False, False, False, True, True, True]
    assert result.values[:3].tolist() == [0.0, 0.0, 0.0]
    # (9 - 3) / std([0, 0, 9]) = 1.414... clipped to 1.
    assert result.values[5] == 1.0
    assert result.values[3] == pytest.approx(-3 / np.std([0, 0, 9]))


def test_advantage_inputs_are_checked() -> None:
    groups = np.array([0, 0])
    with pytest.raises(ValueError, match="shape"):
        compute_advantages({"r": np.zeros(3)}, groups, {"r": 1.0}, AdvantageConfig())
    with pytest.raises(ValueError, match="non-finite"):
        compute_advantages({"r": np.array([0.0, np.nan])}, groups, {"r": 1.0}, AdvantageConfig())
    with pytest.raises(ValueError, match="not scored"):
        compute_advantages({"r": np.zeros(2)}, groups, {"s": 1.0}, AdvantageConfig())
    with pytest.raises(ValueError, match="std_scope"):
        AdvantageConfig(std_scope="batch")  # type: ignore[arg-type]


def test_tgr_weights_equal_flash_grpo_coefficients_normalised_to_mean_one() -> None:
    indices = [0, 3, 3, 9, 5, 0]
    weights = tgr_weights(_wan_gradient_scales(indices))
    coe = torch.tensor([FLASH_GRPO_COE[k] for k in indices], dtype=torch.float64)
    torch.testing.assert_close(weights.double(), coe / coe.mean(), rtol=2e-5, atol=0)
    assert float(weights.mean()) == pytest.approx(1.0, abs=1e-6)
    assert not weights.requires_grad


def test_tgr_weights_with_a_global_mean() -> None:
    scales = torch.tensor([2.0, 4.0])
    # Global batch 1/c = {0.5, 0.25, 1.0, 1.0}: mean 0.6875.
    weights = tgr_weights(scales, mean_inverse_scale=0.6875)
    torch.testing.assert_close(weights, torch.tensor([0.5 / 0.6875, 0.25 / 0.6875]))
    with pytest.raises(ValueError, match="finite and > 0"):
        tgr_weights(torch.tensor([1.0, float("nan")]))
    with pytest.raises(ValueError, match="non-empty"):
        tgr_weights(torch.zeros(0))


def test_clipped_loss_at_ratio_one_is_minus_weighted_advantage() -> None:
    log_prob = torch.tensor([-0.3, 0.2, 0.1], requires_grad=True)
    advantages = torch.tensor([1.0, -2.0, 0.5])
    weights = torch.tensor([0.5, 1.0, 1.5])
    loss = clipped_policy_loss(
        log_prob, log_prob.detach().clone(), advantages, weights, PolicyLossConfig()
    )
    torch.testing.assert_close(loss.terms, -weights * advantages)
    assert loss.ratio.tolist() == [1.0, 1.0, 1.0]
    loss.terms.sum().backward()
    assert log_prob.grad is not None
    torch.testing.assert_close(log_prob.grad, -weights * advantages)


def test_clipped_branch_has_no_gradient() -> None:
    config = PolicyLossConfig(clip_range=0.1)
    old = torch.zeros(4)
    # ratios e^0.2 > 1.1 and e^-0.2 < 0.9; positive advantage clips above, negative below.
    log_prob = torch.tensor([0.2, -0.2, 0.2, -0.2], requires_grad=True)
    advantages = torch.tensor([1.0, -1.0, -1.0, 1.0])
    loss = clipped_policy_loss(log_prob, old, advantages, torch.ones(4), config)
    assert loss.is_clipped.tolist() == [True, True, False, False]
    torch.testing.assert_close(loss.terms[:2], torch.tensor([-1.1, 0.9]))
    loss.terms.sum().backward()
    assert log_prob.grad is not None
    assert log_prob.grad[:2].tolist() == [0.0, 0.0]
    assert log_prob.grad[2] == pytest.approx(np.exp(0.2))
    assert log_prob.grad[3] == pytest.approx(-np.exp(-0.2))


def test_kl_of_a_shifted_mean_is_the_gaussian_kl() -> None:
    mean = torch.zeros(2, 3, 4)
    reference = mean.clone()
    reference[0] += 0.3
    std = torch.tensor([0.5, 0.5])
    kl = kl_to_reference(mean, reference, std)
    torch.testing.assert_close(kl, torch.tensor([0.09 / (2 * 0.25), 0.0]))
    loss = clipped_policy_loss(
        torch.zeros(2),
        torch.zeros(2),
        torch.zeros(2),
        torch.ones(2),
        PolicyLossConfig(0.1, 2.0),
        kl,
    )
    torch.testing.assert_close(loss.terms, 2.0 * kl)


def test_loss_inputs_are_checked() -> None:
    with pytest.raises(ValueError, match=r"\(N,\)"):
        clipped_policy_loss(
            torch.zeros(2), torch.zeros(3), torch.zeros(2), torch.ones(2), PolicyLossConfig()
        )
    with pytest.raises(ValueError, match="clip_range"):
        PolicyLossConfig(clip_range=0.0)
    with pytest.raises(ValueError, match="kl_weight"):
        PolicyLossConfig(kl_weight=-1.0)

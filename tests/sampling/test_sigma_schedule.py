import math

import pytest
import torch

from vpt.sampling import (
    TimestepSamplingConfig,
    per_sample_sigmas,
    sample_training_sigmas,
    sampling_sigmas,
    shift_sigmas,
    sigma_grid_values,
)


def test_shift_known_values() -> None:
    sigmas = torch.tensor([0.0, 0.25, 0.5, 1.0], dtype=torch.float64)
    # 3 s / (1 + 2 s): 0, 0.75/1.5, 1.5/2, 1.
    expected = torch.tensor([0.0, 0.5, 0.75, 1.0], dtype=torch.float64)
    torch.testing.assert_close(shift_sigmas(sigmas, 3.0), expected, rtol=0, atol=1e-15)
    torch.testing.assert_close(shift_sigmas(sigmas, 1.0), sigmas, rtol=0, atol=0)


@pytest.mark.parametrize("num_steps", [1, 2, 7, 20, 50])
@pytest.mark.parametrize("shift", [0.3, 1.0, 3.0, 5.0, 12.0])
def test_sampling_sigmas_monotone_with_exact_endpoints(num_steps: int, shift: float) -> None:
    sigmas = sampling_sigmas(num_steps, shift)
    assert sigmas.shape == (num_steps + 1,)
    assert sigmas.dtype == torch.float32
    assert sigmas[0].item() == 1.0
    assert sigmas[-1].item() == 0.0
    assert bool(torch.all(sigmas[1:] < sigmas[:-1]))


def test_sampling_sigmas_shift_moves_steps_to_high_noise() -> None:
    unshifted = sampling_sigmas(10, 1.0)
    torch.testing.assert_close(unshifted, torch.linspace(1, 0, 11), rtol=0, atol=1e-7)
    shifted = sampling_sigmas(10, 3.0)
    assert bool(torch.all(shifted[1:-1] > unshifted[1:-1]))
    assert shifted[1].item() == pytest.approx(3 * 0.9 / (1 + 2 * 0.9), abs=1e-7)


@pytest.mark.parametrize("num_steps", [0, -3, 2.5, True])
def test_sampling_sigmas_rejects_bad_num_steps(num_steps: object) -> None:
    with pytest.raises(ValueError, match="num_steps must be an integer >= 1"):
        sampling_sigmas(num_steps, 1.0)  # type: ignore[arg-type]


@pytest.mark.parametrize("shift", [0.0, -1.0, math.nan])
def test_shift_must_be_positive(shift: float) -> None:
    with pytest.raises(ValueError, match="shift must be > 0"):
        sampling_sigmas(4, shift)
    with pytest.raises(ValueError, match="shift must be > 0"):
        shift_sigmas(torch.tensor([0.5]), shift)


@pytest.mark.parametrize(
    ("grid", "message"),
    [
        ([1.0], "at least 2 values"),
        ([[1.0, 0.0]], "1-D"),
        ([1.0, 0.5, 0.5, 0.0], "strictly decreasing"),
        ([1.0, 0.0, 0.5], "strictly decreasing"),
        ([1.5, 0.5], r"lie in \[0, 1\]"),
        ([0.5, -0.1], r"lie in \[0, 1\]"),
    ],
)
def test_sigma_grid_values_rejects_bad_grids(grid: list[float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        sigma_grid_values(torch.tensor(grid))


def test_sigma_grid_values_accepts_a_slice() -> None:
    sigmas = sampling_sigmas(8, 3.0)
    assert sigma_grid_values(sigmas[2:5]) == sigmas[2:5].tolist()


def test_per_sample_sigmas_broadcasts_and_checks_shape() -> None:
    x = torch.zeros(3, 2, 2)
    assert per_sample_sigmas(0.5, x).tolist() == [0.5, 0.5, 0.5]
    assert per_sample_sigmas(torch.tensor(0.25), x).tolist() == [0.25, 0.25, 0.25]
    sigma = torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64)
    result = per_sample_sigmas(sigma, x)
    assert result.dtype == torch.float32 and result.shape == (3,)
    with pytest.raises(ValueError, match=r"\(3,\) tensor"):
        per_sample_sigmas(torch.tensor([0.1, 0.2]), x)


def _draw(config: TimestepSamplingConfig, count: int = 200_000, seed: int = 0) -> torch.Tensor:
    return sample_training_sigmas(count, config, torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("kind", ["uniform", "logit_normal"])
@pytest.mark.parametrize("shift", [0.2, 1.0, 5.0, 1000.0])
def test_training_sigmas_strictly_inside_unit_interval(kind: str, shift: float) -> None:
    config = TimestepSamplingConfig(kind=kind, shift=shift, logit_std=8.0)  # type: ignore[arg-type]
    sigmas = _draw(config)
    assert sigmas.shape == (200_000,)
    assert sigmas.dtype == torch.float32
    assert bool(torch.all((sigmas > 0) & (sigmas < 1)))


def test_logit_normal_median_and_mean_move_with_shift() -> None:
    # Unshifted: median of sigmoid(m + s z) is sigmoid(m); the shift is monotone, so the
    # shifted median is shift_sigmas(sigmoid(m)).
    base = TimestepSamplingConfig(kind="logit_normal", logit_mean=1.0, logit_std=1.0)
    median = _draw(base).median().item()
    assert median == pytest.approx(1 / (1 + math.exp(-1.0)), abs=5e-3)
    shifted = TimestepSamplingConfig(kind="logit_normal", shift=3.0, logit_mean=1.0)
    expected = 3 * 0.7310586 / (1 + 2 * 0.7310586)
    assert _draw(shifted).median().item() == pytest.approx(expected, abs=5e-3)
    means = [
        _draw(TimestepSamplingConfig(kind="logit_normal", shift=shift)).mean().item()
        for shift in (1 / 3, 1.0, 3.0)
    ]
    assert means[1] == pytest.approx(0.5, abs=5e-3)
    assert means[0] < means[1] - 0.1 and means[2] > means[1] + 0.1


def test_uniform_shift_matches_its_cdf() -> None:
    # P(shift(u) <= t) = t / (shift - (shift - 1) t); at shift 3, t = 0.5 this is 0.25.
    sigmas = _draw(TimestepSamplingConfig(kind="uniform", shift=3.0))
    assert (sigmas <= 0.5).float().mean().item() == pytest.approx(0.25, abs=5e-3)
    unshifted = _draw(TimestepSamplingConfig(kind="uniform", shift=1.0))
    assert unshifted.mean().item() == pytest.approx(0.5, abs=5e-3)


def test_training_sigmas_are_seeded() -> None:
    config = TimestepSamplingConfig()
    assert torch.equal(_draw(config, 64, seed=3), _draw(config, 64, seed=3))
    assert not torch.equal(_draw(config, 64, seed=3), _draw(config, 64, seed=4))


def test_timestep_config_validation() -> None:
    with pytest.raises(ValueError, match="kind must be one of"):
        TimestepSamplingConfig(kind="cosine")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="shift must be > 0"):
        TimestepSamplingConfig(shift=0.0)
    with pytest.raises(ValueError, match="logit_std must be > 0"):
        TimestepSamplingConfig(logit_std=0.0)
    with pytest.raises(ValueError, match="batch_size"):
        sample_training_sigmas(0, TimestepSamplingConfig(), torch.Generator())


def test_high_noise_band_takes_its_fraction_and_leaves_the_rest() -> None:
    base = TimestepSamplingConfig(kind="logit_normal", shift=3.0)
    mixed = TimestepSamplingConfig(
        kind="logit_normal", shift=3.0, high_noise_fraction=0.4, high_noise_min=0.95
    )
    draws = sample_training_sigmas(200_000, mixed, torch.Generator().manual_seed(0))
    plain = sample_training_sigmas(200_000, base, torch.Generator().manual_seed(0))
    # Under the base density P(sigma >= 0.95) = P(N > logit(0.95 / 1.1)) ~ 3.2%, so the band holds
    # 0.4 + 0.6 * 0.032 of the mixture; the draws are the base's where they are not redrawn.
    expected_in_band = 0.4 + 0.6 * float((plain >= 0.95).float().mean())
    assert abs(float((draws >= 0.95).float().mean()) - expected_in_band) < 0.005
    assert float(draws.max()) < 1.0
    unchanged = draws == plain
    assert abs(float(unchanged.float().mean()) - 0.6) < 0.01


def test_high_noise_band_off_is_bit_identical_and_validated() -> None:
    config = TimestepSamplingConfig(kind="uniform", shift=3.0)
    off = TimestepSamplingConfig(kind="uniform", shift=3.0, high_noise_fraction=0.0)
    first = sample_training_sigmas(64, config, torch.Generator().manual_seed(3))
    second = sample_training_sigmas(64, off, torch.Generator().manual_seed(3))
    assert torch.equal(first, second)
    with pytest.raises(ValueError, match="high_noise_fraction"):
        TimestepSamplingConfig(high_noise_fraction=1.5)
    with pytest.raises(ValueError, match="high_noise_min"):
        TimestepSamplingConfig(high_noise_min=1.0)

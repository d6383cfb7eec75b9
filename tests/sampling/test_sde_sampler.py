import math

import pytest
import torch
from torch import Tensor

from vpt.sampling import (
    NoiseSchedule,
    SDEConfig,
    diffusion_coefficient,
    euler_step,
    gaussian_log_prob,
    sample_ode,
    sample_sde,
    sampling_sigmas,
    sde_step,
)

SCHEDULES: list[NoiseSchedule] = ["flow_grpo", "dance_grpo", "flash_grpo"]
PUBLIC_NOISE_LEVELS = {"flow_grpo": 0.7, "dance_grpo": 0.3, "flash_grpo": 0.98}


def _inputs(shape: tuple[int, ...] = (3, 4, 2, 6, 6), seed: int = 0) -> tuple[Tensor, Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=generator), torch.randn(shape, generator=generator)


def _config(schedule: NoiseSchedule) -> SDEConfig:
    return SDEConfig(schedule=schedule, noise_level=PUBLIC_NOISE_LEVELS[schedule])


# Step pairs from a 10-step shift-3 grid: the first (sigma = 1), a middle and a late step.
GRID = sampling_sigmas(10, 3.0).tolist()
STEP_PAIRS = [(GRID[0], GRID[1]), (GRID[4], GRID[5]), (GRID[8], GRID[9])]


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize(("sigma", "sigma_next"), STEP_PAIRS)
def test_zero_noise_equals_the_euler_step(
    schedule: NoiseSchedule, sigma: float, sigma_next: float
) -> None:
    x, v = _inputs()
    step = sde_step(x, v, sigma, sigma_next, SDEConfig(schedule=schedule, noise_level=0.0))
    euler = euler_step(x, v, sigma, sigma_next)
    torch.testing.assert_close(step.sample, euler, rtol=0, atol=1e-7)
    assert torch.equal(step.sample, euler)
    assert torch.equal(step.std, torch.zeros(3))
    assert bool(torch.all(torch.isnan(step.log_prob)))
    assert bool(torch.all(torch.isnan(step.gradient_scale)))


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_step_to_sigma_zero_is_deterministic_euler(schedule: NoiseSchedule) -> None:
    x, v = _inputs()
    step = sde_step(x, v, GRID[9], 0.0, _config(schedule), torch.Generator().manual_seed(0))
    assert torch.equal(step.sample, euler_step(x, v, GRID[9], 0.0))
    torch.testing.assert_close(step.sample, x - GRID[9] * v)
    assert torch.equal(step.std, torch.zeros(3))
    assert bool(torch.all(torch.isnan(step.log_prob)))


def test_mixed_batch_marks_only_the_last_step_samples_deterministic() -> None:
    x, v = _inputs()
    sigma = torch.tensor([GRID[2], GRID[9], GRID[5]])
    sigma_next = torch.tensor([GRID[3], 0.0, GRID[6]])
    step = sde_step(x, v, sigma, sigma_next, _config("flash_grpo"), torch.Generator())
    assert step.std[1].item() == 0 and bool(torch.all(step.std[[0, 2]] > 0))
    assert math.isnan(step.log_prob[1].item())
    assert bool(torch.all(torch.isfinite(step.log_prob[[0, 2]])))
    assert torch.equal(step.sample[1], euler_step(x[1:2], v[1:2], GRID[9], 0.0)[0])


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize(("sigma", "sigma_next"), STEP_PAIRS)
def test_log_prob_equals_torch_normal(
    schedule: NoiseSchedule, sigma: float, sigma_next: float
) -> None:
    x, v = _inputs()
    step = sde_step(x, v, sigma, sigma_next, _config(schedule), torch.Generator().manual_seed(1))
    scale = step.std.reshape(-1, 1, 1, 1, 1).expand_as(x)
    expected = torch.distributions.Normal(step.mean, scale).log_prob(step.sample)
    expected_B = expected.mean(dim=(1, 2, 3, 4))
    torch.testing.assert_close(step.log_prob, expected_B, rtol=1e-6, atol=1e-6)


def test_gaussian_log_prob_with_full_shape_std_equals_torch_normal() -> None:
    generator = torch.Generator().manual_seed(2)
    sample = torch.randn(4, 7, 5, generator=generator)
    mean = torch.randn(4, 7, 5, generator=generator)
    std = torch.rand(4, 7, 5, generator=generator) + 0.1
    expected = torch.distributions.Normal(mean, std).log_prob(sample).mean(dim=(1, 2))
    torch.testing.assert_close(gaussian_log_prob(sample, mean, std), expected)
    # A per-sample std (B,) broadcasts over the trailing dims.
    std_B = torch.tensor([0.5, 1.0, 2.0, 0.1])
    expected_B = torch.distributions.Normal(mean, std_B.reshape(4, 1, 1)).log_prob(sample)
    torch.testing.assert_close(gaussian_log_prob(sample, mean, std_B), expected_B.mean(dim=(1, 2)))


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_empirical_noise_matches_mean_and_std(schedule: NoiseSchedule) -> None:
    x, v = _inputs(shape=(3, 200_000))
    sigma = torch.tensor([GRID[0], GRID[3], GRID[7]])
    sigma_next = torch.tensor([GRID[1], GRID[4], GRID[8]])
    step = sde_step(x, v, sigma, sigma_next, _config(schedule), torch.Generator().manual_seed(5))
    residual = step.sample - step.mean
    empirical_std = residual.std(dim=1)
    torch.testing.assert_close(empirical_std, step.std, rtol=0.02, atol=0)
    standard_error = step.std / math.sqrt(x.shape[1])
    assert bool(torch.all(residual.mean(dim=1).abs() < 4 * standard_error))


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_reevaluating_a_stored_sample_gives_ratio_exactly_one(
    schedule: NoiseSchedule, dtype: torch.dtype
) -> None:
    x, v = _inputs()
    x, v = x.to(dtype), v.to(dtype)
    sigma, sigma_next = STEP_PAIRS[1]
    config = _config(schedule)
    rollout = sde_step(x, v, sigma, sigma_next, config, torch.Generator().manual_seed(3))
    assert rollout.sample.dtype == dtype
    rescored = sde_step(x, v, sigma, sigma_next, config, sample=rollout.sample)
    assert torch.equal(rescored.log_prob, rollout.log_prob)
    assert torch.equal(torch.exp(rescored.log_prob - rollout.log_prob), torch.ones(3))
    # A changed policy gives a different log-prob for the same stored sample.
    moved = sde_step(x, v + 1.0, sigma, sigma_next, config, sample=rollout.sample)
    assert bool(torch.all(moved.log_prob < rollout.log_prob))


def test_seeded_generator_reproduces_and_different_seeds_differ() -> None:
    x, v = _inputs()
    config = _config("flash_grpo")

    def draw(seed: int) -> Tensor:
        return sde_step(x, v, 0.9, 0.8, config, torch.Generator().manual_seed(seed)).sample

    assert torch.equal(draw(7), draw(7))
    assert not torch.equal(draw(7), draw(8))


def test_a_generator_is_required_to_draw() -> None:
    x, v = _inputs()
    with pytest.raises(ValueError, match=r"explicit torch\.Generator"):
        sde_step(x, v, 0.9, 0.8, _config("dance_grpo"))


@pytest.mark.parametrize(("sigma", "sigma_next"), [(0.5, 0.5), (0.4, 0.6), (1.2, 0.5), (0.5, -0.1)])
def test_invalid_sigma_pairs_raise(sigma: float, sigma_next: float) -> None:
    x, v = _inputs()
    with pytest.raises(ValueError, match="1 >= sigma > sigma_next >= 0"):
        sde_step(x, v, sigma, sigma_next, _config("flow_grpo"), torch.Generator())


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_gradient_reaches_v_but_not_the_stored_sample(schedule: NoiseSchedule) -> None:
    x, v = _inputs()
    sigma, sigma_next = STEP_PAIRS[1]
    config = _config(schedule)
    rollout = sde_step(x, v, sigma, sigma_next, config, torch.Generator().manual_seed(4))
    stored = rollout.sample.clone().requires_grad_(True)
    v_param = v.clone().requires_grad_(True)
    step = sde_step(x, v_param, sigma, sigma_next, config, sample=stored)
    step.log_prob.sum().backward()
    assert stored.grad is None
    assert v_param.grad is not None
    # d log_prob / d v = -(gradient_scale * eps) / D with eps = (x' - mean) / std, D elements.
    elements = x[0].numel()
    eps = (rollout.sample - rollout.mean) / rollout.std.reshape(-1, 1, 1, 1, 1)
    expected = -rollout.gradient_scale.reshape(-1, 1, 1, 1, 1) * eps / elements
    torch.testing.assert_close(v_param.grad, expected, rtol=1e-4, atol=1e-9)


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize(("sigma", "sigma_next"), STEP_PAIRS)
def test_gradient_scale_equals_finite_difference(
    schedule: NoiseSchedule, sigma: float, sigma_next: float
) -> None:
    x, v = _inputs(shape=(2, 5), seed=6)
    x, v = x.double(), v.double()
    config = _config(schedule)
    step = sde_step(x, v, sigma, sigma_next, config, torch.Generator().manual_seed(0))
    shift = 1e-3
    moved = sde_step(x, v + shift, sigma, sigma_next, config, sample=step.sample)
    d_mean_d_v = (moved.mean - step.mean) / shift
    expected = d_mean_d_v.abs().mean(dim=1) / step.std
    torch.testing.assert_close(step.gradient_scale.double(), expected, rtol=1e-5, atol=0)


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_per_sample_sigmas_equal_a_loop_over_samples(schedule: NoiseSchedule) -> None:
    x, v = _inputs(shape=(4, 3, 2, 5, 5), seed=9)
    sigma = torch.tensor([GRID[0], GRID[2], GRID[5], GRID[8]])
    sigma_next = torch.tensor([GRID[1], GRID[3], GRID[6], GRID[9]])
    config = _config(schedule)
    batched = sde_step(x, v, sigma, sigma_next, config, torch.Generator().manual_seed(11))
    for index in range(4):
        single = sde_step(
            x[index : index + 1],
            v[index : index + 1],
            sigma[index].item(),
            sigma_next[index].item(),
            config,
            sample=batched.sample[index : index + 1],
        )
        assert torch.equal(single.mean[0], batched.mean[index])
        assert torch.equal(single.std[0], batched.std[index])
        assert torch.equal(single.gradient_scale[0], batched.gradient_scale[index])
        torch.testing.assert_close(single.log_prob[0], batched.log_prob[index], rtol=0, atol=0)
    # The drawn batch is mean + std * eps with eps the generator's next (B, ...) normal draw.
    eps = torch.randn(x.shape, generator=torch.Generator().manual_seed(11))
    expected = batched.mean + batched.std.reshape(-1, 1, 1, 1, 1) * eps
    assert torch.equal(batched.sample, expected)


def test_flow_grpo_is_finite_at_sigma_one_and_uses_sigma_next() -> None:
    x, v = _inputs()
    config = SDEConfig(schedule="flow_grpo", noise_level=0.7)
    step = sde_step(x, v, 1.0, GRID[1], config, torch.Generator().manual_seed(0))
    for value in (step.std, step.log_prob, step.gradient_scale):
        assert bool(torch.all(torch.isfinite(value)))
    assert torch.isfinite(step.mean).all()
    g = diffusion_coefficient(1.0, GRID[1], config)
    assert g.item() == pytest.approx(0.7 * math.sqrt(1 / (1 - GRID[1])), rel=1e-6)
    # Below 1 the formula is the plain a * sqrt(sigma / (1 - sigma)).
    g_mid = diffusion_coefficient(GRID[4], GRID[5], config)
    assert g_mid.item() == pytest.approx(0.7 * math.sqrt(GRID[4] / (1 - GRID[4])), rel=1e-6)


# Reference steps transcribed from the public repositories' samplers (see the research note),
# each in the repository's own algebraic form, with dt = sigma_next - sigma < 0.
def _reference_flow_grpo(x, v, sigma, sigma_next, a, sigma_max, eps):  # type: ignore[no-untyped-def]
    dt = sigma_next - sigma
    std_dev_t = math.sqrt(sigma / (1 - (sigma_max if sigma == 1 else sigma))) * a
    mean = (
        x * (1 + std_dev_t**2 / (2 * sigma) * dt)
        + v * (1 + std_dev_t**2 * (1 - sigma) / (2 * sigma)) * dt
    )
    return mean, std_dev_t * math.sqrt(-dt), mean + std_dev_t * math.sqrt(-dt) * eps


def _reference_dance_grpo(x, v, sigma, sigma_next, eta, eps):  # type: ignore[no-untyped-def]
    dsigma = sigma_next - sigma
    pred_original = x - sigma * v
    score = -(x - pred_original * (1 - sigma)) / sigma**2
    mean = x + dsigma * v + (-0.5 * eta**2 * score) * dsigma
    std = eta * math.sqrt(-dsigma)
    return mean, std, mean + std * eps


def _reference_flash_grpo(x, v, sigma, sigma_next, sigma_max, eps):  # type: ignore[no-untyped-def]
    sigma_min = 0.0
    std_dev_t = sigma_min + (sigma_max - sigma_min) * sigma
    dt = sigma_next - sigma
    mean = (
        x * (1 + std_dev_t**2 / (2 * sigma) * dt)
        + v * (1 + std_dev_t**2 * (1 - sigma) / (2 * sigma)) * dt
    )
    return mean, std_dev_t * math.sqrt(-dt), mean + std_dev_t * math.sqrt(-dt) * eps


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize(("sigma", "sigma_next"), STEP_PAIRS)
def test_matches_the_public_reference_steps(
    schedule: NoiseSchedule, sigma: float, sigma_next: float
) -> None:
    x, v = _inputs()
    x, v = x.double(), v.double()
    a = PUBLIC_NOISE_LEVELS[schedule]
    step = sde_step(x, v, sigma, sigma_next, _config(schedule), torch.Generator().manual_seed(0))
    eps = torch.randn(x.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    references = {
        "flow_grpo": lambda: _reference_flow_grpo(x, v, sigma, sigma_next, a, GRID[1], eps),
        "dance_grpo": lambda: _reference_dance_grpo(x, v, sigma, sigma_next, a, eps),
        "flash_grpo": lambda: _reference_flash_grpo(x, v, sigma, sigma_next, a, eps),
    }
    mean, std, sample = references[schedule]()
    torch.testing.assert_close(step.mean, mean, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(
        step.std, torch.full((3,), std, dtype=step.std.dtype), rtol=1e-5, atol=0
    )
    torch.testing.assert_close(step.sample, sample, rtol=1e-5, atol=1e-6)
    log_density = (
        -((sample - mean) ** 2) / (2 * std**2) - math.log(std) - 0.5 * math.log(2 * math.pi)
    )
    torch.testing.assert_close(
        step.log_prob, log_density.mean(dim=(1, 2, 3, 4)), rtol=1e-5, atol=1e-5
    )


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="schedule must be one of"):
        SDEConfig(schedule="cps")  # type: ignore[arg-type]
    for noise_level in (-0.1, math.inf, math.nan):
        with pytest.raises(ValueError, match="noise_level must be finite and >= 0"):
            SDEConfig(noise_level=noise_level)


def test_single_sde_step_rollout_is_ode_then_sde_then_ode(gaussian_velocity) -> None:
    noise = torch.randn(2, 4, 3, 4, 4, generator=torch.Generator().manual_seed(12))
    sigmas = sampling_sigmas(10, 3.0)
    velocity = gaussian_velocity(0.5, 0.8)
    config = _config("flash_grpo")
    k = 3
    trajectory = sample_sde(velocity, noise, sigmas, config, torch.Generator().manual_seed(1), [k])
    assert [transition.index for transition in trajectory.transitions] == [k]
    transition = trajectory.transitions[0]
    assert transition.sigma == sigmas[k].item() and transition.sigma_next == sigmas[k + 1].item()
    assert torch.equal(transition.x, sample_ode(velocity, noise, sigmas[: k + 1]))
    sigma_B = torch.full((2,), transition.sigma)
    step = sde_step(
        transition.x,
        velocity(transition.x, sigma_B),
        transition.sigma,
        transition.sigma_next,
        config,
        sample=transition.x_next,
    )
    assert torch.equal(step.log_prob, transition.log_prob)
    assert torch.equal(step.std, transition.std)
    assert torch.equal(step.gradient_scale, transition.gradient_scale)
    assert torch.equal(trajectory.sample, sample_ode(velocity, transition.x_next, sigmas[k + 1 :]))


def test_sample_sde_default_makes_every_step_but_the_last_stochastic(point_mass_velocity) -> None:
    target = torch.randn(2, 3, 4, generator=torch.Generator().manual_seed(0))
    noise = torch.randn(2, 3, 4, generator=torch.Generator().manual_seed(1))
    sigmas = sampling_sigmas(6, 3.0)
    for schedule in SCHEDULES:
        trajectory = sample_sde(
            point_mass_velocity(target), noise, sigmas, _config(schedule), torch.Generator()
        )
        assert [transition.index for transition in trajectory.transitions] == [0, 1, 2, 3, 4]
        for transition in trajectory.transitions:
            assert bool(torch.all(torch.isfinite(transition.log_prob)))
            assert bool(torch.all(transition.std > 0))
        # The last step is the Euler step x - sigma * v, which lands exactly on a point mass.
        torch.testing.assert_close(trajectory.sample, target, rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    ("sde_steps", "message"),
    [([5], "ends at sigma 0"), ([6], "outside"), ([-1], "outside"), ([True], "integer")],
)
def test_sample_sde_rejects_bad_step_indices(
    point_mass_velocity, sde_steps: list[int], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        sample_sde(
            point_mass_velocity(torch.zeros(1, 2)),
            torch.ones(1, 2),
            sampling_sigmas(6, 1.0),
            _config("flow_grpo"),
            torch.Generator(),
            sde_steps,
        )


def test_sample_sde_is_seeded(gaussian_velocity) -> None:
    noise = torch.randn(2, 32, generator=torch.Generator().manual_seed(0))
    sigmas = sampling_sigmas(8, 3.0)

    def run(seed: int) -> Tensor:
        generator = torch.Generator().manual_seed(seed)
        return sample_sde(
            gaussian_velocity(0.0, 1.0), noise, sigmas, _config("dance_grpo"), generator
        ).sample

    assert torch.equal(run(5), run(5))
    assert not torch.equal(run(5), run(6))


def test_sample_sde_with_zero_noise_equals_sample_ode(gaussian_velocity) -> None:
    noise = torch.randn(2, 32, generator=torch.Generator().manual_seed(0))
    sigmas = sampling_sigmas(8, 3.0)
    velocity = gaussian_velocity(1.0, 0.3)
    config = SDEConfig(schedule="flow_grpo", noise_level=0.0)
    trajectory = sample_sde(velocity, noise, sigmas, config, torch.Generator())
    assert torch.equal(trajectory.sample, sample_ode(velocity, noise, sigmas))
    assert all(torch.isnan(t.log_prob).all() for t in trajectory.transitions)


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_sde_sampling_preserves_the_gaussian_marginal(
    gaussian_velocity, schedule: NoiseSchedule
) -> None:
    # The SDE family shares the ODE's marginals: with the exact velocity of x0 ~ N(m, tau^2),
    # a fully stochastic trajectory must end near N(m, tau^2) (up to the Euler-Maruyama bias).
    noise = torch.randn(1, 100_000, generator=torch.Generator().manual_seed(0))
    velocity = gaussian_velocity(1.5, 0.5)
    trajectory = sample_sde(
        velocity,
        noise,
        sampling_sigmas(200, 3.0),
        _config(schedule),
        torch.Generator().manual_seed(1),
    )
    final = trajectory.sample
    assert final.mean().item() == pytest.approx(1.5, abs=0.01)
    assert final.std().item() == pytest.approx(0.5, rel=0.03)


def test_gradient_scale_reproduces_flash_grpo_coefficient_table() -> None:
    # Flash-GRPO hard-codes coe = 1 / c for Wan2.1's 20-step, shift-3 UniPC grid (sigma_max
    # 0.999, zero terminal sigma), keyed by timestep, with g = sigmas[1] * sigma.
    published = [7.4770, 7.0414, 6.6112, 6.1867, 5.7682, 5.3559, 4.9502, 4.5513, 4.1596, 3.7754]
    uniform = torch.linspace(0.999, 0.0, 21, dtype=torch.float64)[:-1]
    grid = torch.cat([3 * uniform / (1 + 2 * uniform), torch.zeros(1, dtype=torch.float64)])
    assert [int(1000 * grid[i]) for i in range(10)] == [
        999, 982, 963, 944, 922, 899, 874, 847, 817, 785
    ]  # fmt: skip
    config = SDEConfig(schedule="flash_grpo", noise_level=grid[1].item())
    x = torch.zeros(1, 8)
    for index, coe in enumerate(published):
        step = sde_step(x, x, grid[index].item(), grid[index + 1].item(), config, torch.Generator())
        assert 1 / step.gradient_scale.item() == pytest.approx(coe, abs=6e-5)

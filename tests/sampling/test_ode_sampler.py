import pytest
import torch
from torch import Tensor

from vpt.sampling import classifier_free_guidance, euler_step, sample_ode, sampling_sigmas


def test_euler_step_known_value() -> None:
    x = torch.tensor([[1.0, 2.0]])
    v = torch.tensor([[4.0, -2.0]])
    # x + (0.25 - 0.75) * v
    expected = torch.tensor([[-1.0, 3.0]])
    assert torch.equal(euler_step(x, v, 0.75, 0.25), expected)


def test_euler_step_per_sample_sigmas_equal_a_loop() -> None:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(4, 2, 3, 5, 5, generator=generator)
    v = torch.randn(4, 2, 3, 5, 5, generator=generator)
    sigma = torch.tensor([1.0, 0.8, 0.5, 0.1])
    sigma_next = torch.tensor([0.9, 0.3, 0.0, 0.05])
    batched = euler_step(x, v, sigma, sigma_next)
    for index in range(4):
        single = euler_step(
            x[index : index + 1], v[index : index + 1], sigma[index].item(), sigma_next[index]
        )
        assert torch.equal(batched[index : index + 1], single)


def test_euler_step_keeps_dtype_and_checks_shape() -> None:
    x = torch.randn(2, 4, dtype=torch.bfloat16)
    assert euler_step(x, torch.randn(2, 4, dtype=torch.bfloat16), 1.0, 0.5).dtype == torch.bfloat16
    with pytest.raises(ValueError, match="v must have x's shape"):
        euler_step(x, torch.randn(2, 5), 1.0, 0.5)


def test_classifier_free_guidance() -> None:
    v_cond = torch.tensor([2.0, -1.0])
    v_uncond = torch.tensor([1.0, 1.0])
    assert torch.equal(classifier_free_guidance(v_cond, v_uncond, 1.0), v_cond)
    assert torch.equal(classifier_free_guidance(v_cond, v_uncond, 0.0), v_uncond)
    # 1 + 4.5 * (2 - 1), 1 + 4.5 * (-1 - 1)
    assert torch.equal(classifier_free_guidance(v_cond, v_uncond, 4.5), torch.tensor([5.5, -8.0]))


@pytest.mark.parametrize(("num_steps", "shift"), [(1, 1.0), (4, 3.0), (20, 5.0)])
def test_sample_ode_reaches_a_point_mass(point_mass_velocity, num_steps: int, shift: float) -> None:
    generator = torch.Generator().manual_seed(1)
    target = torch.randn(2, 4, 3, 6, 6, generator=generator)
    noise = torch.randn(2, 4, 3, 6, 6, generator=generator)
    result = sample_ode(point_mass_velocity(target), noise, sampling_sigmas(num_steps, shift))
    torch.testing.assert_close(result, target, rtol=0, atol=1e-5)


def test_sample_ode_transports_noise_to_a_gaussian(gaussian_velocity) -> None:
    # The exact flow maps z to 2 + 0.5 z; Euler converges to it at first order.
    noise = torch.randn(4, 3, 2, 8, 8, generator=torch.Generator().manual_seed(2))
    expected = 2.0 + 0.5 * noise
    velocity = gaussian_velocity(2.0, 0.5)
    errors = [
        (sample_ode(velocity, noise, sampling_sigmas(steps, 3.0)) - expected).abs().max().item()
        for steps in (10, 100, 1000)
    ]
    assert errors[2] < 1e-2
    # First order: ten times the steps, a tenth of the error.
    assert 8 < errors[0] / errors[1] < 12
    assert 8 < errors[1] / errors[2] < 12


def test_sample_ode_on_grid_slices_composes(gaussian_velocity) -> None:
    noise = torch.randn(3, 16, generator=torch.Generator().manual_seed(3))
    sigmas = sampling_sigmas(12, 3.0)
    velocity = gaussian_velocity(-1.0, 2.0)
    full = sample_ode(velocity, noise, sigmas)
    prefix = sample_ode(velocity, noise, sigmas[:6])
    assert torch.equal(sample_ode(velocity, prefix, sigmas[5:]), full)


def test_on_step_is_called_in_order_and_an_exception_stops_sampling(point_mass_velocity) -> None:
    calls: list[int] = []
    velocity = point_mass_velocity(torch.zeros(1, 3))

    def counting_velocity(x: Tensor, sigma: Tensor) -> Tensor:
        calls.append(len(calls))
        return velocity(x, sigma)

    seen: list[int] = []
    sample_ode(
        counting_velocity, torch.ones(1, 3), sampling_sigmas(5, 1.0), lambda i, x: seen.append(i)
    )
    assert seen == [0, 1, 2, 3, 4]
    assert len(calls) == 5

    class CancelledError(Exception):
        pass

    def cancel_after_two(index: int, x: Tensor) -> None:
        if index == 1:
            raise CancelledError

    calls.clear()
    with pytest.raises(CancelledError):
        sample_ode(counting_velocity, torch.ones(1, 3), sampling_sigmas(5, 1.0), cancel_after_two)
    assert len(calls) == 2


def test_sample_ode_first_frame_is_held_clean_and_seen_at_every_step() -> None:
    generator = torch.Generator().manual_seed(1)
    noise = torch.randn(2, 3, 4, 2, 2, generator=generator)
    first = torch.randn(2, 3, 1, 2, 2, generator=generator)
    seen: list[Tensor] = []

    def velocity(x: Tensor, sigma: Tensor) -> Tensor:
        seen.append(x[:, :, :1].clone())
        return (x + x.mean(dim=2, keepdim=True)) * sigma.reshape(-1, 1, 1, 1, 1)  # mixes frames

    out = sample_ode(velocity, noise, sampling_sigmas(3, 3.0), first_frame=first)
    assert len(seen) == 3 and all(torch.equal(frame, first) for frame in seen)
    assert torch.equal(out[:, :, :1], first)
    plain = sample_ode(velocity, noise, sampling_sigmas(3, 3.0))
    assert not torch.equal(out[:, :, 1:], plain[:, :, 1:])  # the later frames saw the anchor
    with pytest.raises(ValueError, match="first_frame must be one latent frame"):
        sample_ode(velocity, noise, sampling_sigmas(3, 3.0), first_frame=first[:, :, :, :1])

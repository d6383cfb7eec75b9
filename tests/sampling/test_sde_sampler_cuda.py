"""The samplers on a CUDA device: same results as on the CPU, seeded, and exact re-scoring."""

import pytest
import torch

from vpt.sampling import SDEConfig, euler_step, sample_sde, sampling_sigmas, sde_step

pytestmark = pytest.mark.gpu


def _inputs(device: str, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2, 16, 5, 30, 52, generator=generator)
    v = torch.randn(2, 16, 5, 30, 52, generator=generator)
    return x.to(device, dtype), v.to(device, dtype)


def test_cpu_generator_gives_the_same_noise_on_cuda() -> None:
    config = SDEConfig(schedule="flash_grpo", noise_level=0.98)
    x_cpu, v_cpu = _inputs("cpu")
    x_gpu, v_gpu = _inputs("cuda")
    on_cpu = sde_step(x_cpu, v_cpu, 0.9, 0.85, config, torch.Generator().manual_seed(1))
    on_gpu = sde_step(x_gpu, v_gpu, 0.9, 0.85, config, torch.Generator().manual_seed(1))
    assert on_gpu.sample.device.type == "cuda"
    torch.testing.assert_close(on_gpu.sample.cpu(), on_cpu.sample, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(on_gpu.log_prob.cpu(), on_cpu.log_prob, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cuda_rescoring_is_exact_and_zero_noise_is_euler(dtype: torch.dtype) -> None:
    x, v = _inputs("cuda", dtype)
    config = SDEConfig(schedule="flow_grpo", noise_level=0.7)
    generator = torch.Generator(device="cuda").manual_seed(2)
    sigma = torch.tensor([1.0, 0.6], device="cuda")
    sigma_next = torch.tensor([0.95, 0.5], device="cuda")
    rollout = sde_step(x, v, sigma, sigma_next, config, generator)
    rescored = sde_step(x, v, sigma, sigma_next, config, sample=rollout.sample)
    assert torch.equal(rescored.log_prob, rollout.log_prob)
    assert bool(torch.all(torch.isfinite(rollout.log_prob)))
    still = sde_step(x, v, sigma, sigma_next, SDEConfig(schedule="flow_grpo", noise_level=0.0))
    assert torch.equal(still.sample, euler_step(x, v, sigma, sigma_next))


def test_sample_sde_on_cuda_is_seeded() -> None:
    noise = torch.randn(2, 16, 3, 8, 8, device="cuda", generator=torch.Generator("cuda"))
    sigmas = sampling_sigmas(10, 3.0, device="cuda")

    def velocity(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        assert sigma.device.type == "cuda"
        return x / (1 + sigma.reshape(-1, 1, 1, 1, 1))

    def run(seed: int) -> torch.Tensor:
        generator = torch.Generator(device="cuda").manual_seed(seed)
        return sample_sde(velocity, noise, sigmas, SDEConfig(), generator, [2]).sample

    assert torch.equal(run(3), run(3))
    assert not torch.equal(run(3), run(4))

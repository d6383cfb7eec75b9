"""Known answers for the distillation losses."""

from __future__ import annotations

import pytest
import torch

from tests.distill.tiny_causal import tiny_student
from tests.tiny_models import tiny_generator
from vpt.generator import SamplerSettings
from vpt.models.kv_cache import AttentionWindow
from vpt.models.transformer import predict_velocity
from vpt.sampling import sampling_sigmas
from vpt.training.dmd import (
    critic_loss,
    dmd_direction,
    dmd_generator_loss,
    dmd_surrogate_loss,
    ode_regression_loss,
    stored_step_indices,
    teacher_trajectories,
)


def test_surrogate_gradient_is_the_direction_over_numel() -> None:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 4, 5, 5, generator=generator, dtype=torch.float64).requires_grad_()
    direction = torch.randn(x.shape, generator=generator, dtype=torch.float64)
    dmd_surrogate_loss(x, direction).backward()
    assert x.grad is not None
    assert torch.allclose(x.grad, direction / x.numel(), rtol=0, atol=1e-15)


def test_direction_is_normalised_per_sample_by_the_real_error() -> None:
    x = torch.zeros(2, 1, 1, 1, 2)
    real = torch.tensor([[1.0, -3.0], [0.5, 0.5]]).view(2, 1, 1, 1, 2)
    fake = real + torch.tensor([[2.0, 2.0], [1.0, -1.0]]).view(2, 1, 1, 1, 2)
    # mean |x - real| = 2 for the first sample and 0.5 for the second
    expected = torch.tensor([[1.0, 1.0], [2.0, -2.0]], dtype=torch.float64).view(2, 1, 1, 1, 2)
    assert torch.equal(dmd_direction(x, real, fake), expected)


def test_generator_gradient_matches_the_closed_form() -> None:
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(2, 2, 3, 4, 4, generator=generator).requires_grad_()
    noise = torch.randn(x.shape, generator=generator)
    sigma = torch.tensor([0.3, 0.8])

    def real(latents: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        return 0.5 * latents + 0.1

    def fake(latents: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        return -0.2 * latents

    outputs = dmd_generator_loss(x, real, fake, sigma, noise)
    outputs.loss.backward()
    s = sigma.view(-1, 1, 1, 1, 1)
    noisy = (1 - s) * x.detach() + s * noise
    real_x0 = noisy - s * real(noisy, sigma)
    fake_x0 = noisy - s * fake(noisy, sigma)
    normaliser = (x.detach() - real_x0).abs().flatten(1).mean(1).view(-1, 1, 1, 1, 1)
    expected = (fake_x0 - real_x0) / normaliser / x.numel()
    assert x.grad is not None
    assert torch.allclose(x.grad, expected, rtol=1e-5, atol=1e-10)


def test_critic_loss_is_flow_matching_on_detached_samples() -> None:
    base = tiny_generator()
    critic = base.transformer
    generator = torch.Generator().manual_seed(2)
    video = torch.randn(2, 4, 4, 8, 8, generator=generator).requires_grad_()
    noise = torch.randn(video.shape, generator=generator)
    text = base.encode_prompts(["red circle", "blue square"])
    sigma = torch.tensor([0.25, 0.6])
    loss = critic_loss(critic, video, text, sigma, noise, "velocity")
    s = sigma.view(-1, 1, 1, 1, 1)
    with torch.no_grad():
        velocity = predict_velocity(critic, (1 - s) * video + s * noise, sigma, text)
    expected = (velocity - (noise - video.detach())).pow(2).mean()
    assert torch.allclose(loss.detach(), expected, rtol=1e-6)
    loss.backward()
    assert video.grad is None


def test_teacher_grid_holds_the_student_sigmas() -> None:
    student = [float(s) for s in sampling_sigmas(4, 3.0)[:-1]]
    assert stored_step_indices(student, 32, 3.0) == [0, 8, 16, 24]
    with pytest.raises(ValueError, match="multiple"):
        stored_step_indices(student, 30, 3.0)
    with pytest.raises(ValueError, match="same shift"):
        stored_step_indices(student, 32, 5.0)


def test_trajectories_are_stored_at_the_student_sigmas() -> None:
    teacher = tiny_generator()
    student_sigmas = [float(s) for s in sampling_sigmas(2, 3.0)[:-1]]
    sampler = SamplerSettings(num_steps=4, shift=3.0, guidance_scale=2.0)
    prompts, seeds = ["red circle moving left"], [5]
    noisy, clean = teacher_trajectories(teacher, prompts, seeds, student_sigmas, sampler)
    assert noisy.shape == (1, 2, *teacher.latent_shape())
    assert torch.equal(noisy[:, 0], teacher.initial_noise(seeds))
    seen: dict[int, torch.Tensor] = {}
    end = teacher.generate_latents(
        prompts, seeds, sampler, on_step=lambda i, x: seen.setdefault(i, x.clone())
    )
    assert torch.equal(clean, end)
    assert torch.equal(noisy[:, 1], seen[1])  # grid index 2 = after step 1 = sigma 0.75


def test_ode_regression_feeds_each_chunk_its_drawn_step_and_skips_clean_chunks() -> None:
    student = tiny_student(AttentionWindow(chunk_frames=2))
    generator = torch.Generator().manual_seed(3)
    batch, steps, frames = 3, 2, 6
    noisy = torch.randn(batch, steps, 4, frames, 4, 4, generator=generator)
    clean = torch.randn(batch, 4, frames, 4, 4, generator=generator)
    text = student.encode_text(torch.randn(batch, 5, 16, generator=generator))
    sigmas = [1.0, 0.75]
    loss = ode_regression_loss(
        student, text, noisy, clean, sigmas, "velocity", torch.Generator().manual_seed(7)
    )
    # The same draw by hand: one index in 0..K per (sample, chunk); K means the clean latent.
    index = torch.randint(0, steps + 1, (batch, 3), generator=torch.Generator().manual_seed(7))
    inputs = torch.empty_like(clean)
    sigma_BT = torch.zeros(batch, frames)
    for b in range(batch):
        for chunk in range(3):
            k = int(index[b, chunk])
            part = slice(2 * chunk, 2 * chunk + 2)
            inputs[b, :, part] = clean[b, :, part] if k == steps else noisy[b, k, :, part]
            sigma_BT[b, part] = 0.0 if k == steps else sigmas[k]
    with torch.no_grad():
        velocity = student(inputs, sigma_BT, text)
    sigma = sigma_BT[:, None, :, None, None]
    squared = (inputs - sigma * velocity - clean).pow(2)
    weight = (sigma > 0).float().expand_as(squared)
    expected = (squared * weight).sum() / weight.sum()
    assert 0 < int((index < steps).sum()) < index.numel()  # both kinds of chunk occur
    assert torch.allclose(loss.detach(), expected, rtol=1e-5)

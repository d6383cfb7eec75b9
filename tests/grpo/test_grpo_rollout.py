"""Isotemporal rollouts on a tiny real generator: what is stored, shared and reproducible, and
that re-evaluating a stored step reproduces its log-prob and the loss gradient."""

from __future__ import annotations

import pytest
import torch

from tests.tiny_models import tiny_generator
from vpt.generator import Generator, SamplerSettings
from vpt.sampling import euler_step, sampling_sigmas
from vpt.training.grpo import PolicyLossConfig, clipped_policy_loss, tgr_weights
from vpt.training.rollout import (
    RolloutBatch,
    RolloutConfig,
    RolloutRequest,
    branch_candidates,
    draw_branch_steps,
    evaluate_policy,
    isotemporal_request,
    row_seed,
    run_rollouts,
)

PROMPTS = ("a red circle moving left", "a blue square moving up fast")
GROUP = 3
CONFIG = RolloutConfig(group_size=GROUP, num_steps=6, guidance_scale=2.0)


@pytest.fixture(scope="module")
def generator() -> Generator:
    return tiny_generator(seed=1)


def _request(share_prefix: bool, branch: tuple[int, int] = (1, 2), step: int = 0) -> RolloutRequest:
    rows = [(p, j) for p in range(len(PROMPTS)) for j in range(GROUP)]
    return RolloutRequest(
        prompts=tuple(PROMPTS[p] for p, _ in rows),
        group_ids=torch.tensor([p for p, _ in rows]),
        branch_steps=torch.tensor([branch[p] for p, _ in rows]),
        noise_seeds=tuple(row_seed(step, p, 0 if share_prefix else j) for p, j in rows),
        sde_seeds=tuple(row_seed(step, p, j, 1) for p, j in rows),
    )


def _subset(request: RolloutRequest, rows: list[int]) -> RolloutRequest:
    index = torch.tensor(rows)
    return RolloutRequest(
        prompts=tuple(request.prompts[i] for i in rows),
        group_ids=request.group_ids[index],
        branch_steps=request.branch_steps[index],
        noise_seeds=tuple(request.noise_seeds[i] for i in rows),
        sde_seeds=tuple(request.sde_seeds[i] for i in rows),
    )


def _reevaluate(generator: Generator, batch: RolloutBatch, t: int) -> torch.Tensor:
    with torch.no_grad():
        step = evaluate_policy(
            generator,
            batch.prompts,
            batch.x[:, t],
            batch.x_next[:, t],
            batch.sigma[:, t],
            batch.sigma_next[:, t],
            CONFIG,
        )
    return step.log_prob


def test_branch_candidates_are_the_high_noise_half() -> None:
    assert list(branch_candidates(RolloutConfig(num_steps=20))) == list(range(10))
    assert list(branch_candidates(RolloutConfig(num_steps=2, branch_fraction=1.0))) == [0]
    draws = draw_branch_steps(500, RolloutConfig(num_steps=20), torch.Generator().manual_seed(0))
    assert sorted(set(draws.tolist())) == list(range(10))


@pytest.mark.parametrize("share_prefix", [True, False])
def test_single_step_rollout_stores_one_sde_step_at_each_groups_k(
    generator: Generator, share_prefix: bool
) -> None:
    batch = run_rollouts(generator, _request(share_prefix), CONFIG)
    grid = sampling_sigmas(CONFIG.num_steps, CONFIG.shift)
    assert batch.x.shape == (6, 1, *generator.latent_shape())
    assert batch.step_index[:, 0].tolist() == [1, 1, 1, 2, 2, 2]
    torch.testing.assert_close(batch.sigma[:, 0], grid[batch.step_index[:, 0]])
    torch.testing.assert_close(batch.sigma_next[:, 0], grid[batch.step_index[:, 0] + 1])
    assert batch.videos.shape == (6, 4, 16, 16, 3) and batch.videos.dtype.name == "uint8"
    assert bool(torch.all(batch.std > 0)) and bool(torch.all(torch.isfinite(batch.log_prob)))
    group = slice(0, GROUP)
    same_start = torch.equal(batch.x[0, 0], batch.x[1, 0]) and torch.equal(
        batch.x[0, 0], batch.x[2, 0]
    )
    assert same_start == share_prefix
    assert not torch.equal(batch.x_next[0, 0], batch.x_next[1, 0])
    assert len({tuple(v.ravel()[:64]) for v in batch.videos[group]}) == GROUP
    # Sharing the prefix evaluates it once per group: 1 + 1 (+ 3 * 4 after k) for group 0 etc.
    expected = (2 + 3 * 4) + (3 + 3 * 3) if share_prefix else 6 * CONFIG.num_steps
    assert batch.velocity_evaluations == expected


def test_rows_before_k_follow_the_ode_exactly(generator: Generator) -> None:
    request = _request(share_prefix=True, branch=(2, 2))
    batch = run_rollouts(generator, request, CONFIG)
    grid = sampling_sigmas(CONFIG.num_steps, CONFIG.shift).tolist()
    text = generator.encode_prompts(request.prompts[:1])
    negative = generator.encode_prompts([""])
    velocity = generator.guided_velocity_fn(text, negative, CONFIG.guidance_scale)
    x = generator.initial_noise(request.noise_seeds[:1])
    with torch.no_grad():
        for index in range(2):
            x = euler_step(
                x, velocity(x, torch.full((1,), grid[index])), grid[index], grid[index + 1]
            )
    torch.testing.assert_close(batch.x[0, 0], x[0], rtol=0, atol=1e-6)


@pytest.mark.parametrize("share_prefix", [True, False])
def test_reevaluating_the_stored_step_gives_ratio_one(
    generator: Generator, share_prefix: bool
) -> None:
    batch = run_rollouts(generator, _request(share_prefix), CONFIG)
    ratio = torch.exp(_reevaluate(generator, batch, 0) - batch.log_prob[:, 0])
    torch.testing.assert_close(ratio, torch.ones(6), rtol=0, atol=1e-6)


def test_every_step_exploration_stores_all_but_the_last_step(generator: Generator) -> None:
    batch = run_rollouts(generator, _request(share_prefix=False), CONFIG, "every_step")
    assert batch.x.shape[1] == CONFIG.num_steps - 1
    assert batch.step_index[0].tolist() == list(range(CONFIG.num_steps - 1))
    for t in range(CONFIG.num_steps - 1):
        ratio = torch.exp(_reevaluate(generator, batch, t) - batch.log_prob[:, t])
        torch.testing.assert_close(ratio, torch.ones(6), rtol=0, atol=1e-6)
    # Consecutive transitions chain: the next step starts where the previous one landed.
    torch.testing.assert_close(batch.x[:, 1], batch.x_next[:, 0], rtol=0, atol=0)


def test_a_row_does_not_depend_on_the_rest_of_its_batch(generator: Generator) -> None:
    request = _request(share_prefix=True)
    full = run_rollouts(generator, request, CONFIG)
    part = run_rollouts(generator, _subset(request, [1, 2, 4]), CONFIG)
    torch.testing.assert_close(part.x_next, full.x_next[[1, 2, 4]], rtol=0, atol=1e-5)
    torch.testing.assert_close(part.log_prob, full.log_prob[[1, 2, 4]], rtol=0, atol=1e-5)
    again = run_rollouts(generator, request, CONFIG)
    assert torch.equal(again.x_next, full.x_next)
    assert (again.videos == full.videos).all()


def test_bad_branch_steps_and_requests_are_refused(generator: Generator) -> None:
    with pytest.raises(ValueError, match=r"branch steps must lie in 0\.\.2"):
        run_rollouts(generator, _request(True, branch=(0, 3)), CONFIG)
    with pytest.raises(ValueError, match="one entry per row"):
        RolloutRequest(("a",), torch.zeros(2, dtype=torch.int64), torch.zeros(1), (1,), (1,))
    with pytest.raises(ValueError, match="group_size"):
        RolloutConfig(group_size=1)
    with pytest.raises(ValueError, match="noise_level"):
        RolloutConfig(sde=CONFIG.sde.__class__(noise_level=0.0))
    with pytest.raises(ValueError, match="exploration"):
        run_rollouts(generator, _request(True), CONFIG, "sometimes")  # type: ignore[arg-type]


def test_loss_gradient_matches_finite_differences() -> None:
    generator = tiny_generator(seed=2)
    batch = run_rollouts(generator, _request(share_prefix=False, branch=(0, 2)), CONFIG)
    # fp64 so central differences resolve the derivative (the text cache holds fp32 embeddings)
    generator.transformer.double()
    generator.encode_prompts([*PROMPTS, generator.config.negative_prompt])
    generator._text_cache = {k: v.double() for k, v in generator._text_cache.items()}
    advantages = torch.tensor([1.0, -0.5, -0.5, 0.3, 0.7, -1.0])
    weights = tgr_weights(batch.gradient_scale[:, 0])
    config = PolicyLossConfig(clip_range=0.5)
    parameter = generator.transformer.proj_out.weight

    def loss() -> torch.Tensor:
        step = evaluate_policy(
            generator,
            batch.prompts,
            batch.x[:, 0].double(),
            batch.x_next[:, 0].double(),
            batch.sigma[:, 0],
            batch.sigma_next[:, 0],
            CONFIG,
        )
        terms = clipped_policy_loss(
            step.log_prob, batch.log_prob[:, 0].double(), advantages, weights, config
        ).terms
        return terms.mean()

    parameter.grad = None
    loss().backward()
    assert parameter.grad is not None
    direction = torch.randn(parameter.shape, generator=torch.Generator().manual_seed(0)).double()
    analytic = float((parameter.grad * direction).sum())
    h = 1e-5
    with torch.no_grad():
        parameter += h * direction
        plus = float(loss())
        parameter -= 2 * h * direction
        minus = float(loss())
        parameter += h * direction
    assert analytic != 0
    assert (plus - minus) / (2 * h) == pytest.approx(analytic, rel=1e-5)


TWO_PASS = RolloutConfig(group_size=GROUP, num_steps=6, guidance_scale=2.0, anchor_steps=3)


@pytest.mark.parametrize("share_prefix", [True, False])
def test_two_pass_rollouts_hold_the_anchor_frame_and_reproduce_their_log_prob(
    generator: Generator, share_prefix: bool
) -> None:
    request = _request(share_prefix)
    batch = run_rollouts(generator, request, TWO_PASS)
    # Frame 0 of every row is its seed's anchor: the generator's own two-pass first frame.
    sampler = SamplerSettings(
        num_steps=TWO_PASS.num_steps,
        shift=TWO_PASS.shift,
        guidance_scale=TWO_PASS.guidance_scale,
        anchor_steps=TWO_PASS.anchor_steps,
    )
    with torch.no_grad():
        served = generator.generate_latents(request.prompts, request.noise_seeds, sampler)
    torch.testing.assert_close(batch.latents[:, :, :1], served[:, :, :1], rtol=0, atol=1e-6)
    torch.testing.assert_close(batch.x[:, 0, :, :1], served[:, :, :1], rtol=0, atol=1e-6)
    torch.testing.assert_close(batch.x_next[:, 0, :, :1], served[:, :, :1], rtol=0, atol=1e-6)
    # The explored step drew the other frames; the rows of a group differ there.
    assert not torch.equal(batch.x_next[0, 0, :, 1:], batch.x_next[1, 0, :, 1:])
    with torch.no_grad():
        step = evaluate_policy(
            generator,
            batch.prompts,
            batch.x[:, 0],
            batch.x_next[:, 0],
            batch.sigma[:, 0],
            batch.sigma_next[:, 0],
            TWO_PASS,
        )
    torch.testing.assert_close(
        torch.exp(step.log_prob - batch.log_prob[:, 0]), torch.ones(6), rtol=0, atol=1e-6
    )
    assert step.mean.shape[2] == generator.latent_shape()[1] - 1
    # One anchor pass per distinct initial noise.
    anchors = 2 if share_prefix else 6
    one_pass = run_rollouts(generator, request, CONFIG).velocity_evaluations
    assert batch.velocity_evaluations == one_pass + anchors * TWO_PASS.anchor_steps


def test_two_pass_log_prob_ignores_the_clean_frame(generator: Generator) -> None:
    batch = run_rollouts(generator, _request(share_prefix=True), TWO_PASS)
    moved = batch.x_next[:, 0].clone()
    moved[:, :, 0] += 1.0
    with torch.no_grad():
        steps = [
            evaluate_policy(
                generator,
                batch.prompts,
                batch.x[:, 0],
                x_next,
                batch.sigma[:, 0],
                batch.sigma_next[:, 0],
                TWO_PASS,
            )
            for x_next in (batch.x_next[:, 0], moved)
        ]
    torch.testing.assert_close(steps[0].log_prob, steps[1].log_prob, rtol=0, atol=0)
    with pytest.raises(ValueError, match="anchor_steps must be >= 0"):
        RolloutConfig(anchor_steps=-1)


@pytest.mark.parametrize("share_prefix", [True, False])
def test_isotemporal_request_lays_out_groups_at_one_step(share_prefix: bool) -> None:
    request = isotemporal_request(["a", "b"], 3, 5, share_prefix, (7, 1))
    assert request.prompts == ("a", "a", "a", "b", "b", "b")
    assert request.group_ids.tolist() == [0, 0, 0, 1, 1, 1]
    assert request.branch_steps.tolist() == [5] * 6
    assert request.sde_seeds[0] == row_seed(7, 1, 0, 0, 1)
    assert len(set(request.sde_seeds)) == 6
    first_group = set(request.noise_seeds[:3])
    assert len(first_group) == (1 if share_prefix else 3)
    assert not first_group & set(request.noise_seeds[3:])

"""Isotemporal GRPO rollouts: one ODE-to-SDE transition per rollout at a per-prompt step k.

Stage 2 of arXiv 2604.25427 ("isotemporal grouping with single-timestep ODE-to-SDE
transitions"), implemented as in Flash-GRPO (arXiv 2605.15980): for each prompt one step index
k is drawn from the high-noise half of the sampling grid; every rollout of that prompt runs
Euler ODE steps before k, one SDE step at k (`vpt.sampling.sde_step`: its x_k, x_{k+1}, std,
log-prob and gradient scale are stored) and ODE steps after k, then is decoded to a uint8
video for the rewards. `every_step` exploration is Flow-GRPO's (arXiv 2505.05470): an SDE step
at every step but the last, all of them stored and trained.

`anchor_steps` > 0 makes rollouts two-pass, as the generator samples with
`SamplerSettings.anchor_steps`: a short ODE pass from each row's noise seed draws its first
latent frame, and the explored main pass (from the seed's second draw) holds that frame clean at
every step, so the SDE step, its log-prob and the policy's gradient cover the other frames. The
anchor pass is part of the condition, like the prompt: it is not explored or trained, so the
policy is trained on the distribution it is served with.

`share_prefix` chooses how a group shares its trajectory: True gives one initial noise and one
ODE prefix per prompt, the G rollouts branching at k by their own SDE noise (Flow-GRPO-Fast,
DanceGRPO `init_same_noise`); False gives each rollout its own initial noise and shares only k
(Flash-GRPO's released code). Rows of a group with the same noise seed are recognised as sharing
their prefix, which is then evaluated once per group.

Every random draw of a rollout comes from seeds given per row, so a rollout does not depend on
which other rows share its batch or its process: the same (seed, prompt, rollout index) gives
the same video on one rank or on several.

Shape legend: P prompts, G group size, N = rows of this batch (rollouts), T stored transitions
per row, C/F/H/W latent channels/frames/height/width, L/D text tokens/width.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Literal, get_args

import numpy as np
import torch
from torch import Tensor

from vpt.generator import Generator
from vpt.sampling import (
    SDEConfig,
    SDEStep,
    euler_step,
    sample_ode,
    sampling_sigmas,
    sde_step,
    with_first_frame,
)

Exploration = Literal["single_step", "every_step"]


@dataclass(frozen=True)
class RolloutConfig:
    """How rollouts are sampled."""

    group_size: int = 8
    """Rollouts per prompt (G)."""
    num_steps: int = 16
    """Sampling steps of a rollout, from sigma 1 to 0."""
    shift: float = 3.0
    """Timestep shift of the rollout schedule."""
    guidance_scale: float = 4.0
    """Classifier-free guidance in rollouts and in the loss (1 disables it)."""
    sde: SDEConfig = field(default_factory=SDEConfig)
    """Noise schedule g(sigma) of the SDE step."""
    share_prefix: bool = True
    """One initial noise and ODE prefix per prompt (True), or one per rollout (False); the
    caller gives the rows of a group equal or distinct noise seeds accordingly."""
    branch_fraction: float = 0.5
    """k is drawn uniformly from the first `branch_fraction` of the steps (the high-noise part)."""
    anchor_steps: int = 0
    """Two-pass rollouts: ODE steps of the pass that draws each row's clean first latent frame
    (as `SamplerSettings.anchor_steps`); 0 samples in one pass."""

    def __post_init__(self) -> None:
        if self.anchor_steps < 0:
            raise ValueError(f"RolloutConfig.anchor_steps must be >= 0, got {self.anchor_steps}")
        if self.group_size < 2:
            raise ValueError(f"RolloutConfig.group_size must be >= 2, got {self.group_size}")
        if self.num_steps < 2:
            raise ValueError(
                f"RolloutConfig.num_steps must be >= 2 (the last step is always "
                f"deterministic), got {self.num_steps}"
            )
        if not 0 < self.branch_fraction <= 1:
            raise ValueError(
                f"RolloutConfig.branch_fraction must be in (0, 1], got {self.branch_fraction}"
            )
        if self.sde.noise_level <= 0:
            raise ValueError("RolloutConfig.sde.noise_level must be > 0: GRPO needs an SDE step")
        if not 0 <= self.guidance_scale <= 50:
            raise ValueError(
                f"RolloutConfig.guidance_scale must be in 0..50, got {self.guidance_scale}"
            )


def branch_candidates(config: RolloutConfig) -> range:
    """Step indices k may take: the first `branch_fraction` of the grid, never the last step."""
    count = max(1, math.floor(config.num_steps * config.branch_fraction))
    return range(min(count, config.num_steps - 1))


def draw_branch_steps(num_prompts: int, config: RolloutConfig, rng: torch.Generator) -> Tensor:
    """One k per prompt, uniform over `branch_candidates`: int64 (P,)."""
    candidates = branch_candidates(config)
    return torch.randint(len(candidates), (num_prompts,), generator=rng) + candidates.start


def row_seed(*parts: int) -> int:
    """A 63-bit seed mixed from integers (run seed, step, prompt, rollout, purpose)."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(2, np.uint64)[0] >> 1)


@dataclass(frozen=True)
class RolloutRequest:
    """The rows of one rollout batch: which prompt, group and seeds each row has."""

    prompts: tuple[str, ...]
    """(N,) prompt of each row."""
    group_ids: Tensor
    """(N,) int64 group (global prompt index) of each row."""
    branch_steps: Tensor
    """(N,) int64 step k of each row's group."""
    noise_seeds: tuple[int, ...]
    """(N,) seed of each row's initial noise (equal within a group when sharing the prefix)."""
    sde_seeds: tuple[int, ...]
    """(N,) seed of each row's SDE noise."""

    def __post_init__(self) -> None:
        count = len(self.prompts)
        lengths = {
            "group_ids": self.group_ids.shape[0],
            "branch_steps": self.branch_steps.shape[0],
            "noise_seeds": len(self.noise_seeds),
            "sde_seeds": len(self.sde_seeds),
        }
        wrong = {name: n for name, n in lengths.items() if n != count}
        if wrong or count == 0:
            raise ValueError(
                f"a rollout request needs one entry per row ({count} prompts): {wrong}"
            )


def isotemporal_request(
    prompts: Sequence[str],
    group_size: int,
    branch_step: int,
    share_prefix: bool,
    seed_parts: Sequence[int],
) -> RolloutRequest:
    """`group_size` rows per prompt (group = prompt index), every row explored at `branch_step`.

    Row j of prompt p gets initial-noise seed `row_seed(*seed_parts, p, 0 or j, 0)` (0 when the
    group shares its prefix) and SDE seed `row_seed(*seed_parts, p, j, 1)`: for measuring what
    one step at a fixed k does (the trainer draws k per prompt in `plan_step`).
    """
    rows = [(p, j) for p in range(len(prompts)) for j in range(group_size)]
    return RolloutRequest(
        prompts=tuple(prompts[p] for p, _ in rows),
        group_ids=torch.tensor([p for p, _ in rows], dtype=torch.int64),
        branch_steps=torch.full((len(rows),), branch_step, dtype=torch.int64),
        noise_seeds=tuple(row_seed(*seed_parts, p, 0 if share_prefix else j, 0) for p, j in rows),
        sde_seeds=tuple(row_seed(*seed_parts, p, j, 1) for p, j in rows),
    )


@dataclass(frozen=True)
class RolloutBatch:
    """Rollouts with their stored SDE transitions and decoded videos."""

    prompts: tuple[str, ...]
    """(N,) prompts."""
    group_ids: Tensor
    """(N,) int64 group of each row."""
    step_index: Tensor
    """(N, T) int64 grid step of each stored transition."""
    sigma: Tensor
    """(N, T) fp32 noise level before each stored step."""
    sigma_next: Tensor
    """(N, T) fp32 noise level after it."""
    x: Tensor
    """(N, T, C, F, H, W) latent before each stored step."""
    x_next: Tensor
    """(N, T, C, F, H, W) drawn latent after it."""
    log_prob: Tensor
    """(N, T) fp32 element-mean log-prob of x_next under the rollout policy."""
    std: Tensor
    """(N, T) fp32 step std."""
    gradient_scale: Tensor
    """(N, T) fp32 c = |d mean / d v| / std of each stored step."""
    latents: Tensor
    """(N, C, F, H, W) final clean latents."""
    videos: np.ndarray
    """(N, F, H, W, 3) uint8 decoded videos."""
    velocity_evaluations: int
    """Rows evaluated by the network during the rollout (guided rows count once)."""


def _prefix_leaders(request: RolloutRequest) -> Tensor:
    """For each row, the first row with the same group and initial noise: (N,) int64.

    Such rows are identical until their (shared) branch step, so only the leader is evaluated.
    """
    first: dict[tuple[int, int], int] = {}
    keys = zip(request.group_ids.tolist(), request.noise_seeds, strict=True)
    return torch.tensor([first.setdefault((int(g), s), i) for i, (g, s) in enumerate(keys)])


def guided_velocity(
    generator: Generator, x: Tensor, sigma_B: Tensor, text: Tensor, negative: Tensor, scale: float
) -> Tensor:
    """The rollout's velocity: the generator's CFG velocity function (autograd as set)."""
    return generator.guided_velocity_fn(text, negative, scale)(x, sigma_B)


def run_rollouts(
    generator: Generator,
    request: RolloutRequest,
    config: RolloutConfig,
    exploration: Exploration = "single_step",
) -> RolloutBatch:
    """Sample the requested rows under no_grad and store their SDE transitions.

    With `single_step` each row explores at its group's k; with `every_step` at every step but
    the last (its `branch_steps` are ignored, the group branching at step 0).
    """
    if exploration not in get_args(Exploration):
        raise ValueError(f"exploration must be one of {get_args(Exploration)}, got {exploration!r}")
    candidates = branch_candidates(config)
    branch_N = request.branch_steps.to(torch.int64)
    if exploration == "every_step":
        branch_N = torch.zeros_like(branch_N)
    elif not bool(torch.all((branch_N >= candidates.start) & (branch_N < candidates.stop))):
        raise ValueError(
            f"branch steps must lie in {candidates.start}..{candidates.stop - 1} for "
            f"{config.num_steps} steps and branch_fraction {config.branch_fraction}, got "
            f"{branch_N.tolist()}"
        )
    with torch.no_grad():
        return _sample(generator, request, config, exploration, branch_N)


def _sample(
    generator: Generator,
    request: RolloutRequest,
    config: RolloutConfig,
    exploration: Exploration,
    branch_N: Tensor,
) -> RolloutBatch:
    device = generator.device
    sigmas = sampling_sigmas(config.num_steps, config.shift)
    grid = [float(s) for s in sigmas.tolist()]
    text = generator.encode_prompts(request.prompts)
    negative = generator.encode_prompts([generator.config.negative_prompt] * len(request.prompts))
    leader_N = _prefix_leaders(request)
    is_leader_N = leader_N == torch.arange(len(leader_N))
    first, evaluations = None, 0
    if config.anchor_steps:
        first, evaluations = _anchor_frames(generator, request, text, negative, config, leader_N)
    x = generator.initial_noise(request.noise_seeds, draw=1 if first is not None else 0)
    if first is not None:
        x = with_first_frame(x, first)
    sde_rngs = [torch.Generator().manual_seed(seed) for seed in request.sde_seeds]
    stored: list[list[tuple[int, Tensor, SDEStep]]] = [[] for _ in request.prompts]
    explored = slice(1, None) if first is not None else slice(None)
    for index in range(config.num_steps):
        sigma, sigma_next = grid[index], grid[index + 1]
        # Rows sharing a prefix are identical up to and including their branch step.
        is_evaluated_N = is_leader_N | (branch_N < index)
        rows = torch.nonzero(is_evaluated_N).squeeze(1)
        position = torch.full((len(leader_N),), -1, dtype=torch.int64)
        position[rows] = torch.arange(len(rows))
        source_N = torch.where(is_evaluated_N, position, position[leader_N])
        sigma_B = torch.full((len(rows),), sigma, dtype=torch.float32, device=device)
        v_rows = guided_velocity(
            generator, x[rows], sigma_B, text[rows], negative[rows], config.guidance_scale
        )
        evaluations += len(rows)
        v = v_rows[source_N.to(device)]
        is_stochastic_N = (branch_N == index) if exploration == "single_step" else None
        x_next = euler_step(x, v, sigma, sigma_next)
        if first is not None:
            x_next = with_first_frame(x_next, first)
        for row in range(len(request.prompts)):
            if sigma_next == 0:
                break
            if is_stochastic_N is not None and not bool(is_stochastic_N[row]):
                continue
            step = sde_step(
                x[row : row + 1, :, explored],
                v[row : row + 1, :, explored],
                sigma,
                sigma_next,
                config.sde,
                sde_rngs[row],
            )
            x_next[row, :, explored] = step.sample[0]
            stored[row].append((index, x[row], replace(step, sample=x_next[row : row + 1].clone())))
        x = x_next
    counts = {len(steps) for steps in stored}
    if len(counts) != 1:
        raise AssertionError(f"rows stored different numbers of transitions: {sorted(counts)}")
    return RolloutBatch(
        prompts=request.prompts,
        group_ids=request.group_ids,
        step_index=torch.tensor([[i for i, _, _ in steps] for steps in stored]),
        sigma=torch.tensor([[grid[i] for i, _, _ in steps] for steps in stored]),
        sigma_next=torch.tensor([[grid[i + 1] for i, _, _ in steps] for steps in stored]),
        x=torch.stack([torch.stack([x_k for _, x_k, _ in steps]) for steps in stored]),
        x_next=torch.stack([torch.stack([s.sample[0] for _, _, s in steps]) for steps in stored]),
        log_prob=_per_row(stored, "log_prob"),
        std=_per_row(stored, "std"),
        gradient_scale=_per_row(stored, "gradient_scale"),
        latents=x,
        videos=generator.decode(x),
        velocity_evaluations=evaluations,
    )


def _anchor_frames(
    generator: Generator,
    request: RolloutRequest,
    text: Tensor,
    negative: Tensor,
    config: RolloutConfig,
    leader_N: Tensor,
) -> tuple[Tensor, int]:
    """Each row's clean first latent frame (N, C, 1, H, W) from the ODE anchor pass over its
    seed's first noise draw (once per shared prefix), and the network rows it evaluated."""
    rows = torch.unique(leader_N)
    noise = generator.initial_noise([request.noise_seeds[int(i)] for i in rows])
    if noise.ndim != 5 or noise.shape[2] < 2:
        raise ValueError(
            f"anchor_steps needs video latents with at least 2 frames, got {tuple(noise.shape)}"
        )
    velocity_fn = generator.guided_velocity_fn(text[rows], negative[rows], config.guidance_scale)
    sigmas = sampling_sigmas(config.anchor_steps, config.shift).to(generator.device)
    anchor = sample_ode(velocity_fn, noise, sigmas)[:, :, :1]
    position = torch.full((len(leader_N),), -1, dtype=torch.int64)
    position[rows] = torch.arange(len(rows))
    return anchor[position[leader_N].to(anchor.device)], len(rows) * config.anchor_steps


def _per_row(stored: list[list[tuple[int, Tensor, SDEStep]]], name: str) -> Tensor:
    return torch.stack([torch.cat([getattr(s, name) for _, _, s in steps]) for steps in stored])


def evaluate_policy(
    generator: Generator,
    prompts: Sequence[str],
    x: Tensor,
    x_next: Tensor,
    sigma_N: Tensor,
    sigma_next_N: Tensor,
    config: RolloutConfig,
) -> SDEStep:
    """Log-prob of the stored `x_next` given `x` under the current weights, with gradients.

    Uses the rollout's guided velocity (CFG with both branches differentiable) and the one SDE
    step implementation, so unchanged weights reproduce the rollout's log-prob. With two-pass
    rollouts (`config.anchor_steps` > 0) the stored latents carry the clean first frame, which
    the step neither draws nor scores: the log-prob and mean cover frames 1 onwards.
    """
    text = generator.encode_prompts(prompts)
    negative = generator.encode_prompts([generator.config.negative_prompt] * len(prompts))
    device = generator.device
    v = guided_velocity(
        generator,
        x.to(device),
        sigma_N.to(device),
        text,
        negative,
        config.guidance_scale,
    )
    explored = slice(1, None) if config.anchor_steps else slice(None)
    return sde_step(
        x.to(device)[:, :, explored],
        v[:, :, explored],
        sigma_N.to(device),
        sigma_next_N.to(device),
        config.sde,
        sample=x_next.to(device)[:, :, explored],
    )

"""`vpt train grpo`: the GRPO RLHF stage of arXiv 2604.25427 as a resumable, multi-process run.

One step of the run (one policy update round):
1. rank 0 draws the step's prompts and, per prompt, the exploration step k
   (`rollout.draw_branch_steps`) and broadcasts both, so every rollout of a prompt explores at
   the same timestep on every rank (isotemporal grouping);
2. each rank samples its share of every group's G rollouts (`rollout.run_rollouts`), decodes
   and scores them with the rewards;
3. the scores are gathered, so advantages (`grpo.compute_advantages`) and TGR weights
   (`grpo.tgr_weights`) are computed over the global batch, identically on every rank;
4. `updates_per_step` optimizer steps, each on a slice of the kept rollouts: the clipped GRPO
   loss (`grpo.clipped_policy_loss`) at each stored transition, gradients summed over ranks.

Modes: `flash` (one SDE step per rollout at k, TGR), `no_tgr` (the same without TGR) and
`flow_grpo` (an SDE step at every step, all trained, no TGR). LoRA (peft, via diffusers'
`add_adapter`) or full fine-tuning; AdamW; EMA; progress and JSONL metrics; atomic state every
`loop.save_every` steps and exact resume (every random draw of a step is seeded by
(seed, step, prompt, rollout)). The final checkpoint is the EMA weights with LoRA merged, its
manifest naming the SFT model as parent and stage "grpo".

Models stay single-device; the torch.distributed calls (gloo on CPU, NCCL on GPU) are made
here, through `vpt.training.distributed`. The recipe is `vpt.training.grpo_config.GRPOConfig`.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from vpt.checkpoint import Manifest, load_generator, save_checkpoint
from vpt.config import config_to_dict
from vpt.generator import Generator
from vpt.rewards import Reward, check_reward_inputs
from vpt.rewards.reward_set import build_reward_set
from vpt.training.distributed import (
    Ranks,
    all_gather,
    all_reduce_gradients,
    broadcast_from_rank0,
    sum_over_ranks,
)
from vpt.training.ema import EMA
from vpt.training.grpo import (
    AdvantageConfig,
    clipped_policy_loss,
    compute_advantages,
    kl_to_reference,
    tgr_weights,
)
from vpt.training.grpo_config import SHIPPED_MODEL, GRPOConfig, LoRAConfig, training_prompts
from vpt.training.loop import learning_rate
from vpt.training.progress import ProgressLog
from vpt.training.rollout import (
    Exploration,
    RolloutBatch,
    RolloutRequest,
    draw_branch_steps,
    evaluate_policy,
    row_seed,
    run_rollouts,
)
from vpt.training.run_state import RunState, load_run_state, save_run_state

EXPLORATION: dict[str, Exploration] = {
    "flash": "single_step",
    "no_tgr": "single_step",
    "flow_grpo": "every_step",
}
_PROMPT_DRAW, _NOISE_DRAW, _SDE_DRAW, _LORA_INIT = 1, 2, 3, 4


@dataclass(frozen=True)
class StepPlan:
    """What one GRPO step samples: prompts, branch steps and this rank's rows."""

    prompt_ids: Tensor
    """(P,) indices into the prompt pool."""
    branch_steps: Tensor
    """(P,) exploration step k of each prompt."""
    request: RolloutRequest
    """This rank's rows."""
    global_rows: np.ndarray
    """(N_local,) index p * G + j of each local row in the global batch."""


def plan_step(config: GRPOConfig, pool: tuple[str, ...], step: int, ranks: Ranks) -> StepPlan:
    """Draw (rank 0) and broadcast the step's prompts and k; lay out this rank's rows."""
    group_size = config.rollout.group_size
    if group_size % ranks.world_size:
        raise ValueError(
            f"rollout.group_size {group_size} must be divisible by the {ranks.world_size} ranks"
        )
    seed = config.loop.seed
    plan = torch.zeros((2, config.prompts_per_step), dtype=torch.int64)
    if ranks.rank == 0:  # the other ranks receive rank 0's draw
        rng = torch.Generator().manual_seed(row_seed(seed, step, _PROMPT_DRAW))
        plan[0] = torch.randint(len(pool), (config.prompts_per_step,), generator=rng)
        plan[1] = draw_branch_steps(config.prompts_per_step, config.rollout, rng)
    plan = broadcast_from_rank0(plan, ranks)
    prompt_ids, branch_steps = plan[0], plan[1]
    per_rank = group_size // ranks.world_size
    local = range(ranks.rank * per_rank, (ranks.rank + 1) * per_rank)
    rows = [(p, j) for p in range(config.prompts_per_step) for j in local]
    share = config.rollout.share_prefix
    request = RolloutRequest(
        prompts=tuple(pool[int(prompt_ids[p])] for p, _ in rows),
        group_ids=torch.tensor([p for p, _ in rows]),
        branch_steps=torch.stack([branch_steps[p] for p, _ in rows]),
        noise_seeds=tuple(row_seed(seed, step, p, 0 if share else j, _NOISE_DRAW) for p, j in rows),
        sde_seeds=tuple(row_seed(seed, step, p, j, _SDE_DRAW) for p, j in rows),
    )
    global_rows = np.array([p * group_size + j for p, j in rows])
    return StepPlan(prompt_ids, branch_steps, request, global_rows)


def _global_scores(
    scores: Mapping[str, np.ndarray], plan: StepPlan, config: GRPOConfig, ranks: Ranks
) -> dict[str, np.ndarray]:
    """Every rank's scores, placed at their global row index."""
    names = sorted(scores)
    local = torch.tensor(np.stack([scores[n] for n in names]), dtype=torch.float64)
    rows = torch.tensor(plan.global_rows, dtype=torch.float64)
    gathered = all_gather(torch.cat([rows[None], local]), ranks)
    total = config.prompts_per_step * config.rollout.group_size
    result = {name: np.zeros(total) for name in names}
    for part in gathered:
        index = part[0].long().numpy()
        for i, name in enumerate(names):
            result[name][index] = part[i + 1].numpy()
    return result


def score_videos(rewards: Mapping[str, Reward], batch: RolloutBatch) -> dict[str, np.ndarray]:
    """Each reward's (N,) float scores of the batch's videos."""
    check_reward_inputs(batch.videos, batch.prompts)
    scores = {}
    for name, reward in rewards.items():
        values = np.asarray(reward.score(batch.videos, list(batch.prompts)), dtype=np.float64)
        if values.shape != (len(batch.prompts),):
            raise ValueError(
                f"reward {name!r} returned shape {values.shape}, expected ({len(batch.prompts)},)"
            )
        scores[name] = values
    return scores


@dataclass
class Policy:
    """The trained generator and how to reach its reference (the starting weights)."""

    generator: Generator
    reference: Generator | None
    """A frozen copy for full fine-tuning with a KL term; None otherwise."""
    uses_lora: bool

    @contextmanager
    def reference_weights(self) -> Iterator[Generator]:
        """The reference policy: adapters disabled, or the frozen copy."""
        if self.uses_lora:
            self.generator.transformer.disable_adapters()
            try:
                yield self.generator
            finally:
                self.generator.transformer.enable_adapters()
        else:
            assert self.reference is not None
            yield self.reference


def _add_lora(transformer: nn.Module, config: LoRAConfig) -> None:
    from peft import LoraConfig

    transformer.add_adapter(  # type: ignore[operator]
        LoraConfig(
            r=config.rank,
            lora_alpha=config.alpha,
            target_modules=list(config.target_modules),
            init_lora_weights=True,
        )
    )


def prepare_policy(generator: Generator, config: GRPOConfig) -> Policy:
    """Freeze what does not train; add LoRA adapters or keep a reference copy for the KL."""
    generator.autoencoder.requires_grad_(False)
    generator.text_encoder.model.requires_grad_(False)
    transformer = generator.transformer
    transformer.eval()  # no dropout: rollout and loss must evaluate the same function
    if config.finetune == "lora":
        transformer.requires_grad_(False)
        with torch.random.fork_rng(devices=[]):  # adapter init draws from the global RNG
            torch.manual_seed(row_seed(config.loop.seed, _LORA_INIT))
            _add_lora(transformer, config.lora)
        return Policy(generator, None, uses_lora=True)
    transformer.requires_grad_(True)
    reference = None
    if config.loss.kl_weight > 0:
        reference = Generator(
            copy.deepcopy(transformer).requires_grad_(False),
            generator.autoencoder,
            generator.text_encoder,
            generator.config,
        )
    return Policy(generator, reference, uses_lora=False)


@dataclass
class UpdateStats:
    """Accumulated per-row figures of one step's updates (local rows)."""

    ratios: list[Tensor] = field(default_factory=list)
    clipped: list[Tensor] = field(default_factory=list)
    kls: list[Tensor] = field(default_factory=list)
    grad_norms: list[float] = field(default_factory=list)


def _loss_weights(
    batch: RolloutBatch, kept_local: np.ndarray, config: GRPOConfig, ranks: Ranks
) -> Tensor:
    """(N_local, T) TGR weights in flash mode, normalised over the global kept rows; else 1."""
    weights = torch.ones_like(batch.gradient_scale)
    if config.mode != "flash":
        return weights
    kept_scales = batch.gradient_scale[torch.from_numpy(kept_local)].double()
    inverse_sum = sum_over_ranks(float((1.0 / kept_scales).sum()), ranks)
    count = sum_over_ranks(float(kept_scales.numel()), ranks)
    if count == 0:
        return weights
    flat = tgr_weights(batch.gradient_scale.reshape(-1), mean_inverse_scale=inverse_sum / count)
    return flat.reshape(batch.gradient_scale.shape)


def accumulate_policy_gradient(
    policy: Policy,
    batch: RolloutBatch,
    rows: np.ndarray,
    advantages: Tensor,
    weights: Tensor,
    config: GRPOConfig,
    ranks: Ranks,
    stats: UpdateStats,
) -> float:
    """Accumulate the loss gradient of `rows` (local indices); returns this rank's loss sum.

    The loss is normalised by the global number of (row, transition) terms of this update, so
    summing gradients over ranks gives the global mean.
    """
    transitions = batch.x.shape[1]
    global_terms = sum_over_ranks(float(len(rows) * transitions), ranks)
    chunk = config.micro_batch or max(1, len(rows))
    loss_sum = 0.0
    for start in range(0, len(rows), chunk):
        part = rows[start : start + chunk]
        prompts = [batch.prompts[i] for i in part]
        index = torch.from_numpy(part)
        for t in range(transitions):
            step = evaluate_policy(
                policy.generator,
                prompts,
                batch.x[index, t],
                batch.x_next[index, t],
                batch.sigma[index, t],
                batch.sigma_next[index, t],
                config.rollout,
            )
            kl = None
            if config.loss.kl_weight > 0:
                with torch.no_grad(), policy.reference_weights() as reference:
                    reference_step = evaluate_policy(
                        reference,
                        prompts,
                        batch.x[index, t],
                        batch.x_next[index, t],
                        batch.sigma[index, t],
                        batch.sigma_next[index, t],
                        config.rollout,
                    )
                kl = kl_to_reference(step.mean, reference_step.mean, step.std)
            loss = clipped_policy_loss(
                step.log_prob,
                batch.log_prob[index, t].to(step.log_prob.device),
                advantages[index].to(step.log_prob.device),
                weights[index, t].to(step.log_prob.device),
                config.loss,
                kl,
            )
            total = loss.terms.sum()
            (total / global_terms).backward()
            loss_sum += float(total.detach())
            stats.ratios.append(loss.ratio.cpu())
            stats.clipped.append(loss.is_clipped.cpu())
            stats.kls.append(loss.kl.cpu())
    return loss_sum / global_terms


@dataclass
class Trainer:
    """The mutable pieces of a run."""

    config: GRPOConfig
    policy: Policy
    rewards: Mapping[str, Reward]
    optimizer: torch.optim.Optimizer
    parameters: list[nn.Parameter]
    ema: EMA | None
    pool: tuple[str, ...]
    ranks: Ranks

    def step(self, step: int) -> dict[str, Any]:
        """One GRPO step: plan, roll out, score, compute advantages, update."""
        config, ranks = self.config, self.ranks
        generator = self.policy.generator
        started, cpu_started = time.perf_counter(), time.process_time()
        plan = plan_step(config, self.pool, step, ranks)
        batch = run_rollouts(generator, plan.request, config.rollout, EXPLORATION[config.mode])
        rollout_seconds = time.perf_counter() - started
        rollout_cpu_seconds = time.process_time() - cpu_started
        scores = _global_scores(score_videos(self.rewards, batch), plan, config, ranks)
        group_ids = np.repeat(np.arange(config.prompts_per_step), config.rollout.group_size)
        advantages = compute_advantages(
            scores,
            group_ids,
            config.rewards.weights,
            AdvantageConfig(std_scope=config.rewards.std_scope, clip=config.advantage_clip),
        )
        local_advantages = torch.from_numpy(advantages.values[plan.global_rows]).float()
        kept_local = advantages.is_kept[plan.global_rows]
        weights = _loss_weights(batch, kept_local, config, ranks)
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate(config.optim, step, config.loop.steps)
        stats = UpdateStats()
        losses = []
        update_started, update_cpu_started = time.perf_counter(), time.process_time()
        for part in np.array_split(np.flatnonzero(kept_local), config.updates_per_step):
            if sum_over_ranks(float(len(part)), ranks) == 0:
                continue
            self.optimizer.zero_grad(set_to_none=True)
            losses.append(
                accumulate_policy_gradient(
                    self.policy, batch, part, local_advantages, weights, config, ranks, stats
                )
            )
            all_reduce_gradients(self.parameters, ranks)
            grad_norm = (
                float(nn.utils.clip_grad_norm_(self.parameters, config.optim.grad_clip))
                if config.optim.grad_clip > 0
                else 0.0
            )
            stats.grad_norms.append(grad_norm)
            self.optimizer.step()
            if self.ema is not None:
                self.ema.update(generator.transformer)
        update_seconds = time.perf_counter() - update_started
        update_cpu_seconds = time.process_time() - update_cpu_started
        kept_weights = weights[torch.from_numpy(kept_local)]
        return _step_metrics(
            scores, advantages.values, advantages.is_kept, plan, stats, losses, kept_weights, config
        ) | {
            "rollout_seconds": round(rollout_seconds, 3),
            "update_seconds": round(update_seconds, 3),
            "rollout_cpu_seconds": round(rollout_cpu_seconds, 3),
            "update_cpu_seconds": round(update_cpu_seconds, 3),
        }


def _step_metrics(
    scores: Mapping[str, np.ndarray],
    advantages: np.ndarray,
    is_kept: np.ndarray,
    plan: StepPlan,
    stats: UpdateStats,
    losses: list[float],
    weights: Tensor,
    config: GRPOConfig,
) -> dict[str, Any]:
    weights_by_name = config.rewards.weights
    total = sum(weight * scores[name] for name, weight in weights_by_name.items())
    metrics: dict[str, Any] = {f"reward_{name}": float(np.mean(v)) for name, v in scores.items()}
    metrics |= {
        "reward": float(np.mean(total)),
        "kept_fraction": float(np.mean(is_kept)),
        "advantage_abs_mean": float(np.abs(advantages[is_kept]).mean()) if is_kept.any() else 0.0,
        "loss": float(np.sum(losses)) if losses else 0.0,
        "updates": len(stats.grad_norms),
        "grad_norm": float(np.mean(stats.grad_norms)) if stats.grad_norms else 0.0,
        "branch_steps": [int(k) for k in plan.branch_steps],
        "tgr_weight_min": float(weights.min()) if weights.numel() else 1.0,
        "tgr_weight_max": float(weights.max()) if weights.numel() else 1.0,
    }
    if stats.ratios:
        ratios = torch.cat(stats.ratios)
        metrics |= {
            "ratio_mean": float(ratios.mean()),
            "ratio_max_deviation": float((ratios - 1).abs().max()),
            "clip_fraction": float(torch.cat(stats.clipped).float().mean()),
            "kl": float(torch.cat(stats.kls).mean()),
        }
    return metrics


def _check_resumable(saved_file: Path, config: GRPOConfig) -> None:
    """Refuse a run folder started with a different recipe (only `loop` may change)."""
    if not saved_file.is_file():
        return
    saved = json.loads(saved_file.read_text())
    current = config_to_dict(config)
    changed = sorted(key for key in current if key != "loop" and saved.get(key) != current[key])
    if changed:
        raise ValueError(
            f"{saved_file.parent} holds a run started with a different recipe (changed: "
            f"{', '.join(changed)}); use a new --out folder, or the original recipe to resume"
        )


class _SilentProgress:
    """The progress of ranks other than 0, which neither draw a bar nor write metrics."""

    def advance(self, steps: int = 1, **postfix: float) -> None:
        pass

    def log(self, step: int, **metrics: Any) -> None:
        pass

    def close(self) -> None:
        pass


@dataclass
class GRPOResult:
    """How `run_grpo` ended."""

    step: int
    """Steps done."""
    finished: bool
    """The run reached `loop.steps`."""
    checkpoint: Path | None
    """The saved checkpoint (rank 0, finished runs only)."""
    metrics: dict[str, Any]
    """Metrics of the last step."""


def run_grpo(
    config: GRPOConfig,
    run_dir: Path,
    rewards: Mapping[str, Reward] | None = None,
    device: str = "cpu",
    on_step: Callable[[int, dict[str, Any]], None] | None = None,
) -> GRPOResult:
    """Train (or resume) a GRPO run in `run_dir`; every rank of a process group calls this.

    The rewards are built from `config.rewards` unless `rewards` (name -> reward) is given; every
    name weighted in `config.rewards.weights` must then be among its keys.
    """
    if rewards is None:
        rewards = {reward.name: reward for reward in build_reward_set(config.rewards).rewards}
    missing = sorted(set(config.rewards.weights) - set(rewards))
    if missing:
        raise ValueError(
            f"rewards.weights names rewards that were not given: {missing}; available: "
            f"{sorted(rewards)}"
        )
    used = {name: rewards[name] for name in config.rewards.weights}
    ranks = Ranks.current()
    run_dir.mkdir(parents=True, exist_ok=True)
    if ranks.rank == 0:
        _check_resumable(run_dir / "config.json", config)
        (run_dir / "config.json").write_text(json.dumps(config_to_dict(config), indent=2))
    loaded = load_generator(config.init_from or SHIPPED_MODEL, device)
    parent: Manifest | None = loaded.manifest
    policy = prepare_policy(loaded.generator, config)
    transformer = policy.generator.transformer
    parameters = [p for p in transformer.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        parameters,
        lr=config.optim.lr,
        betas=config.optim.betas,
        weight_decay=config.optim.weight_decay,
    )
    ema = EMA(transformer, config.optim.ema_decay) if config.optim.ema_decay > 0 else None
    start_step, cpu_before = 0, 0.0
    saved = load_run_state(run_dir)
    if saved is not None:
        try:
            transformer.load_state_dict(saved.model, strict=True)
        except RuntimeError:
            raise ValueError(
                f"{run_dir} holds the state of a different model; use a new --out folder"
            ) from None
        optimizer.load_state_dict(saved.optimizer)
        if ema is not None:
            ema.load_state_dict(saved.ema)
        start_step, cpu_before = saved.step, float(saved.info.get("cpu_seconds", 0.0))
    trainer = Trainer(
        config, policy, used, optimizer, parameters, ema, training_prompts(config.prompts), ranks
    )
    progress: ProgressLog | _SilentProgress = (
        ProgressLog(run_dir, config.loop.steps, start_step, f"grpo[{config.mode}]")
        if ranks.rank == 0
        else _SilentProgress()
    )
    cpu_start = time.process_time()
    step, metrics = start_step, {}

    def save(step: int) -> None:
        if ranks.rank != 0:
            return
        save_run_state(
            run_dir,
            RunState(
                step=step,
                model={k: v.detach().clone() for k, v in transformer.state_dict().items()},
                ema=ema.state_dict() if ema else {},
                optimizer=optimizer.state_dict(),
                generator_state=torch.Generator().get_state(),
                info={
                    "cpu_seconds": cpu_before + time.process_time() - cpu_start,
                    "stage": "grpo",
                },
            ),
        )

    try:
        while step < config.loop.steps:
            metrics = trainer.step(step)
            step += 1
            progress.advance(1, reward=metrics["reward"])
            if on_step is not None:
                on_step(step, metrics)
            if step % config.loop.log_every == 0 or step == config.loop.steps:
                cpu = cpu_before + time.process_time() - cpu_start
                progress.log(step, cpu_seconds=round(cpu, 2), **metrics)
            if step % config.loop.save_every == 0 or step == config.loop.steps:
                save(step)
            if config.loop.stop_after and step - start_step >= config.loop.stop_after:
                break
    finally:
        progress.close()
    finished = step >= config.loop.steps
    checkpoint = None
    if finished and ranks.rank == 0:
        checkpoint = _save_final(policy, ema, config, run_dir, parent, step, metrics)
        checkpoint_metrics = {"cpu_seconds": round(cpu_before + time.process_time() - cpu_start, 1)}
        (run_dir / "result.json").write_text(
            json.dumps({"checkpoint": str(checkpoint), "steps": step, **checkpoint_metrics})
        )
    return GRPOResult(step, finished, checkpoint, metrics)


def _save_final(
    policy: Policy,
    ema: EMA | None,
    config: GRPOConfig,
    run_dir: Path,
    parent: Manifest | None,
    step: int,
    metrics: dict[str, Any],
) -> Path:
    """The EMA weights, LoRA merged, as a checkpoint whose parent is the SFT model."""
    transformer = policy.generator.transformer
    if ema is not None:
        ema.copy_to(transformer)
    if policy.uses_lora:
        transformer.fuse_lora()
        transformer.unload_lora()
    transformer.eval()
    checkpoint = run_dir / "checkpoint"
    summary = {k: v for k, v in metrics.items() if isinstance(v, int | float)}
    save_checkpoint(
        policy.generator,
        checkpoint,
        version=config.version,
        parent=parent.version if parent else None,
        stage="grpo",
        recipe=config_to_dict(config),
        data_seed=config.prompts.seed,
        steps=step,
        metrics={f"last_{k}": v for k, v in summary.items()},
        overwrite=True,
    )
    return checkpoint

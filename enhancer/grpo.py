"""Enhancer stage 2: GRPO of the LoRA enhancer with the video rewards of the frozen generator.

For each user prompt (a short user-register caption of a training attribute combination, never a
held-out one) the policy samples G rewrites (temperature sampling, seeded by the step). Each
rewrite gets one scalar reward (`enhancer.rewrite_reward`): the learned video rewards of
`vpt/assets/rewards` and the structural one, of the video the frozen generator makes from it,
scored against the user's prompt; format failures and dropped attributes below every video,
contradictions lowest (never the judge: it is the held-out evaluator).

The policy objective is the core's (`vpt.training.grpo`): group advantages by
`compute_advantages` (group std) and PPO's clipped surrogate `clipped_policy_loss` on the
token-MEAN log-probability of each rewrite's tokens (eos included) under the temperature-scaled
policy, the distribution the rewrites were sampled from (Shao et al., DeepSeekMath GRPO, arXiv
2402.03300, eq. 3, with the sequence-level ratio of GSPO, arXiv 2507.18071). One optimizer step per
rollout batch, so the ratio is exactly 1 and the update is -A grad log p. An optional KL to the
starting (SFT) adapter uses the k3 estimator exp(q - p) - (q - p) - 1 per token, token-mean.

The run uses the shared loop (`vpt.training.loop`): progress, JSONL metrics, atomic state and
bit-exact resume; a step's prompts, rewrites and video seeds are pure functions of (seed, step).
The finished adapter is a peft folder with a vpt manifest whose parent is the starting adapter.

Shape legend: N = prompts_per_step x group_size rewrites, T rewrite tokens.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from enhancer.base_model import ensure_base_model
from enhancer.chat import chat_messages
from enhancer.embedded import load_tokenizer
from enhancer.intent import RewriteLimits
from enhancer.rewrite_reward import RewriteBatch, RewriteScorer, RewriteScores, VideoRewriteScorer
from enhancer.sft import (
    ADAPTER_DIR,
    IGNORE_INDEX,
    AdapterParameters,
    LoraSettings,
    check_adapter_folder,
    save_adapter,
    start_run_folder,
    trainable_adapter_model,
)
from vpt.generator import Generator
from vpt.rewards.reward_set import RewardSetConfig, build_reward_set
from vpt.training.grpo import (
    AdvantageConfig,
    PolicyLossConfig,
    clipped_policy_loss,
    compute_advantages,
)
from vpt.training.grpo_config import SHIPPED_MODEL, PromptPoolConfig, training_prompts
from vpt.training.loop import LoopConfig, OptimConfig, train_loop

ROLLOUTS_FILE = "rollouts.jsonl"
"""Every step's prompts, rewrites, verdicts and rewards, one JSON line per step."""


@dataclass(frozen=True)
class RewriteSampling:
    """How the policy samples rewrites during training."""

    temperature: float = 1.0
    """Softmax temperature (no top-k/top-p, so the log-probs are exactly the sampler's)."""
    max_new_tokens: int = 48
    """Longest rewrite in tokens; one that has not ended by then is a format failure."""

    def __post_init__(self) -> None:
        if not self.temperature > 0:
            raise ValueError(f"sampling.temperature must be > 0, got {self.temperature}")
        if self.max_new_tokens < 1:
            raise ValueError(f"sampling.max_new_tokens must be >= 1, got {self.max_new_tokens}")


def _default_rewards() -> RewardSetConfig:
    weights = {"text_alignment": 1.0, "visual_quality": 1.0, "motion_quality": 1.0}
    return RewardSetConfig(weights={**weights, "structural": 1.0}, std_scope="group")


@dataclass(frozen=True)
class EnhancerGRPOConfig:
    """A run of `vpt train enhancer --stage grpo`."""

    base_model: str | None = None
    """Hugging Face model folder; None uses the converted SmolLM2-135M-Instruct."""
    init_adapter: str | None = None
    """LoRA adapter to start from (the SFT stage's); None attaches a fresh one (`lora`)."""
    lora: LoraSettings = field(default_factory=LoraSettings)
    """The fresh adapter's settings, used only when `init_adapter` is None."""
    generator: str | None = None
    """Generator checkpoint whose videos are rewarded (frozen); None: the shipped default."""
    generator_steps: int = 0
    """Euler steps of the generator's sampler (0: the checkpoint's default)."""
    prompts: PromptPoolConfig = field(
        default_factory=lambda: PromptPoolConfig(count=512, seed=0, register="short")
    )
    """User prompts: captions of training combinations (never held-out ones)."""
    prompts_per_step: int = 4
    """User prompts (groups) per step."""
    group_size: int = 4
    """Rewrites sampled per user prompt (G)."""
    sampling: RewriteSampling = field(default_factory=RewriteSampling)
    """Temperature and length of the sampled rewrites."""
    video_seeds: int = 1
    """Videos per accepted rewrite (the group shares these seeds); their scores are averaged."""
    rewards: RewardSetConfig = field(default_factory=_default_rewards)
    """Video rewards and their weights; text alignment is scored against the user's prompt."""
    limits: RewriteLimits = field(default_factory=RewriteLimits)
    """Format and length limits (the serving enhancer's)."""
    failure_penalty: float = 1.0
    """How far below the group's floor a format failure or a dropped attribute lands."""
    contradiction_penalty: float = 2.0
    """How far below the group's floor a contradiction lands (> failure_penalty: the lowest)."""
    advantage: AdvantageConfig = field(
        default_factory=lambda: AdvantageConfig(std_scope="group", clip=5.0)
    )
    """Normalisation scope and clip of the group advantages."""
    loss: PolicyLossConfig = field(
        default_factory=lambda: PolicyLossConfig(clip_range=0.2, kl_weight=0.0)
    )
    """PPO clip range of the sequence ratio and the weight of the KL to the starting adapter."""
    optim: OptimConfig = field(
        default_factory=lambda: OptimConfig(
            lr=2e-4, warmup_steps=0, decay="constant", weight_decay=0.0, ema_decay=0.0
        )
    )
    """Optimizer (no EMA: the adapter is saved as trained)."""
    loop: LoopConfig = field(
        default_factory=lambda: LoopConfig(steps=20, log_every=1, save_every=2)
    )
    """Run length and cadence."""
    version: str | None = None
    """Version name of the produced adapter (default: enhancer-grpo-<steps>)."""

    def __post_init__(self) -> None:
        if self.prompts_per_step < 1:
            raise ValueError(f"prompts_per_step must be >= 1, got {self.prompts_per_step}")
        if self.group_size < 2:
            raise ValueError(
                f"group_size must be >= 2 (GRPO compares rewrites), got {self.group_size}"
            )
        if self.video_seeds < 1:
            raise ValueError(f"video_seeds must be >= 1, got {self.video_seeds}")
        if not 0 <= self.generator_steps <= 1000:
            raise ValueError(f"generator_steps must be in 0..1000, got {self.generator_steps}")
        if not self.failure_penalty > 0:
            raise ValueError(f"failure_penalty must be > 0, got {self.failure_penalty}")
        if not self.contradiction_penalty > self.failure_penalty:
            raise ValueError(
                f"contradiction_penalty must be > failure_penalty ({self.failure_penalty}) so a "
                f"contradiction gets the lowest reward, got {self.contradiction_penalty}"
            )
        if self.optim.ema_decay != 0:
            raise ValueError("optim.ema_decay must be 0 for the enhancer (the adapter is saved)")


@dataclass(frozen=True)
class SampledRewrites:
    """Token ids of sampled rewrites and the sampler's log-probs of them."""

    tokens: list[list[int]]
    """(N,) the rewrite's token ids, eos included when it ended."""
    is_finished: list[bool]
    """(N,) whether it ended with eos."""
    sampler_log_probs: list[Tensor]
    """(N,) per-token log-probs under the (temperature-scaled) sampling distribution."""


def step_seed(seed: int, step: int, salt: int) -> int:
    """A 63-bit seed that is a pure function of (seed, step, salt)."""
    return int(np.random.default_rng([seed, step, salt]).integers(0, 2**63 - 1))


def encode_chat(tokenizer: Any, prompt: str) -> list[int]:
    """Token ids of the chat asking to rewrite `prompt`, up to the assistant's turn."""
    text = tokenizer.apply_chat_template(
        chat_messages(prompt), add_generation_prompt=True, tokenize=False
    )
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


@torch.no_grad()
def sample_rewrites(
    model: Any, tokenizer: Any, prompts: Sequence[str], sampling: RewriteSampling, seed: int
) -> SampledRewrites:
    """One sampled rewrite per entry of `prompts` (repeat a prompt for a group), seeded."""
    chats = [encode_chat(tokenizer, p) for p in prompts]
    width = max(len(c) for c in chats)
    pad = tokenizer.pad_token_id
    ids = torch.tensor([[pad] * (width - len(c)) + c for c in chats])
    mask = torch.tensor([[0] * (width - len(c)) + [1] * len(c) for c in chats])
    was_training = model.training
    model.eval()
    torch.manual_seed(seed)
    output = model.generate(
        input_ids=ids,
        attention_mask=mask,
        do_sample=True,
        temperature=sampling.temperature,
        top_k=None,
        top_p=1.0,
        max_new_tokens=sampling.max_new_tokens,
        pad_token_id=pad,
        eos_token_id=tokenizer.eos_token_id,
        return_dict_in_generate=True,
        output_scores=True,
    )
    model.train(was_training)
    new_BT = output.sequences[:, width:]
    log_probs_BTV = torch.stack(output.scores, dim=1).float().log_softmax(-1)
    tokens, finished, sampler_log_probs = [], [], []
    for row in range(len(prompts)):
        row_tokens = new_BT[row].tolist()
        end = (
            row_tokens.index(tokenizer.eos_token_id) + 1
            if tokenizer.eos_token_id in row_tokens
            else None
        )
        kept = row_tokens[:end] if end is not None else row_tokens
        tokens.append(kept)
        finished.append(end is not None)
        positions = torch.arange(len(kept))
        sampler_log_probs.append(
            log_probs_BTV[row, positions, torch.tensor(kept, dtype=torch.long)]
        )
    return SampledRewrites(tokens, finished, sampler_log_probs)


def encode_rollouts(
    tokenizer: Any, prompts: Sequence[str], rewrites: Sequence[Sequence[int]]
) -> dict[str, Tensor]:
    """Right-padded (chat + rewrite) ids, attention mask and labels (-100 outside the rewrite)."""
    rows = [(encode_chat(tokenizer, p), list(r)) for p, r in zip(prompts, rewrites, strict=True)]
    length = max(len(c) + len(r) for c, r in rows)
    ids = torch.full((len(rows), length), tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(rows), length), dtype=torch.long)
    labels = torch.full((len(rows), length), IGNORE_INDEX, dtype=torch.long)
    for row, (chat, rewrite) in enumerate(rows):
        tokens = chat + rewrite
        ids[row, : len(tokens)] = torch.tensor(tokens)
        mask[row, : len(tokens)] = 1
        if rewrite:
            labels[row, len(chat) : len(tokens)] = torch.tensor(rewrite)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def token_log_probs(model: Any, batch: dict[str, Tensor], temperature: float) -> Tensor:
    """(N, L-1) log-probs of each next token under softmax(logits / temperature); 0 off-label."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    labels = batch["labels"][:, 1:]
    scaled = logits[:, :-1].float() / temperature
    picked = scaled.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    log_probs = picked - scaled.logsumexp(-1)
    return torch.where(labels != IGNORE_INDEX, log_probs, torch.zeros_like(log_probs))


def sequence_mean(values: Tensor, labels: Tensor) -> Tensor:
    """(N,) mean of `values` (N, L-1) over each row's rewrite tokens (0 for an empty rewrite)."""
    is_token = (labels[:, 1:] != IGNORE_INDEX).to(values.dtype)
    return (values * is_token).sum(1) / is_token.sum(1).clamp(min=1)


@contextmanager
def swapped_weights(trainable: AdapterParameters, weights: dict[str, Tensor]) -> Iterator[None]:
    """Temporarily load `weights` into the adapter parameters (e.g. the reference adapter)."""
    current = {k: v.detach().clone() for k, v in trainable.state_dict().items()}
    with torch.no_grad():
        trainable.load_state_dict(weights)
    try:
        yield
    finally:
        with torch.no_grad():
            trainable.load_state_dict(current)


def step_prompts(pool: Sequence[str], config: EnhancerGRPOConfig, step: int) -> list[str]:
    """The user prompts of `step` (distinct, a pure function of the seed and step)."""
    rng = np.random.default_rng([config.prompts.seed, step, 1])
    count = min(config.prompts_per_step, len(pool))
    return [pool[int(i)] for i in rng.choice(len(pool), size=count, replace=False)]


@dataclass(frozen=True)
class GRPOResult:
    """How `run_enhancer_grpo` ended."""

    adapter: Path | None
    """The saved adapter folder (None when the run stopped early)."""
    step: int
    """Steps done."""
    cpu_seconds: float
    """CPU time of the whole run so far."""


def load_policy(config: EnhancerGRPOConfig, base: Path) -> Any:
    """The base LLM with a trainable LoRA adapter: the starting adapter, or a fresh one."""
    torch.manual_seed(config.loop.seed)  # a fresh adapter's init; resume overwrites it
    return trainable_adapter_model(base, config.init_adapter, config.lora)


def check_init_adapter(config: EnhancerGRPOConfig) -> str:
    """The starting adapter folder; ValueError naming the field when it is not one."""
    return check_adapter_folder(str(config.init_adapter))


def video_scorer(config: EnhancerGRPOConfig, generator: Generator | None) -> RewriteScorer:
    """The rewrites' reward: the video rewards of `generator` (default: the configured one)."""
    if generator is None:
        from vpt.checkpoint import load_generator

        generator = load_generator(config.generator or SHIPPED_MODEL).generator
    return VideoRewriteScorer(generator, build_reward_set(config.rewards), config)


def run_enhancer_grpo(
    config: EnhancerGRPOConfig,
    run_dir: Path,
    *,
    generator: Generator | None = None,
    scorer: RewriteScorer | None = None,
) -> GRPOResult:
    """Train (or resume) enhancer GRPO in `run_dir`; on completion save `run_dir/adapter`.

    `generator` replaces the configured checkpoint (tests pass a tiny one); `scorer` replaces
    the video reward altogether (a known-answer reward in tests).
    """
    if config.init_adapter is not None:
        check_init_adapter(config)
    base = ensure_base_model(config.base_model)
    recipe = start_run_folder(run_dir, config)
    if scorer is None:
        scorer = video_scorer(config, generator)
    tokenizer = load_tokenizer(base)
    tokenizer.padding_side = "left"
    model = load_policy(config, base)
    model.train()
    trainable = AdapterParameters(model)
    reference = {k: v.detach().clone() for k, v in trainable.state_dict().items()}
    pool = training_prompts(config.prompts)
    advantage_config = config.advantage

    def compute_loss(step: int, rng: torch.Generator) -> tuple[Tensor, dict[str, float]]:
        started = time.monotonic()
        users = step_prompts(pool, config, step)
        repeated = [p for p in users for _ in range(config.group_size)]
        group_ids = np.repeat(np.arange(len(users)), config.group_size)
        sampled = sample_rewrites(
            model, tokenizer, repeated, config.sampling, step_seed(config.loop.seed, step, 0)
        )
        raw = tuple(tokenizer.decode(t, skip_special_tokens=True) for t in sampled.tokens)
        seeds = tuple(
            tuple(
                step_seed(config.loop.seed, step, 1 + g * config.video_seeds + k) % 2**31
                for k in range(config.video_seeds)
            )
            for g in range(len(users))
        )
        batch = RewriteBatch(
            tuple(repeated),
            raw,
            tuple(tuple(t) for t in sampled.tokens),
            tuple(sampled.is_finished),
            group_ids,
            seeds,
        )
        sampled_at = time.monotonic()
        scores = scorer(batch)
        scored_at = time.monotonic()
        advantages = compute_advantages(
            {"reward": scores.total}, group_ids, {"reward": 1.0}, advantage_config
        )
        encoded = encode_rollouts(tokenizer, repeated, sampled.tokens)
        reference_lp = None
        if config.loss.kl_weight > 0:  # before the policy pass: the swap writes the weights
            with torch.no_grad(), swapped_weights(trainable, reference):
                reference_lp = token_log_probs(model, encoded, config.sampling.temperature)
        token_lp = token_log_probs(model, encoded, config.sampling.temperature)
        log_prob_N = sequence_mean(token_lp, encoded["labels"])
        kl_N = None
        if reference_lp is not None:
            difference = reference_lp - token_lp
            kl_N = sequence_mean(torch.exp(difference) - difference - 1, encoded["labels"])
        policy = clipped_policy_loss(
            log_prob_N,
            log_prob_N.detach(),
            torch.from_numpy(advantages.values).float(),
            torch.ones_like(log_prob_N),
            config.loss,
            kl_N,
        )
        loss = policy.terms.mean()
        metrics = _step_metrics(scores, sampled, token_lp, encoded, policy.ratio, policy.kl)
        metrics.update(
            kept_groups=float(advantages.is_kept.reshape(len(users), -1)[:, 0].sum()),
            rollout_s=round(sampled_at - started, 2),
            reward_s=round(scored_at - sampled_at, 2),
        )
        _append_rollouts(run_dir, step, batch, scores, advantages.values)
        return loss, metrics

    result = train_loop(
        trainable, compute_loss, run_dir, config.optim, config.loop, desc="enhancer grpo"
    )
    if not result.finished:
        return GRPOResult(None, result.step, result.cpu_seconds)
    version = config.version or f"enhancer-grpo-{result.step}"
    metrics = {
        key: result.last_metrics.get(key) for key in ("reward_mean", "accepted", "contradicted")
    }
    adapter = save_adapter(
        model,
        run_dir / ADAPTER_DIR,
        version,
        base,
        recipe,
        result.step,
        {**metrics, "cpu_seconds": result.cpu_seconds},
        stage="enhancer-grpo",
        parent=config.init_adapter or str(base),
    )
    return GRPOResult(adapter, result.step, result.cpu_seconds)


def _step_metrics(
    scores: RewriteScores,
    sampled: SampledRewrites,
    token_lp: Tensor,
    encoded: dict[str, Tensor],
    ratio_N: Tensor,
    kl_N: Tensor,
) -> dict[str, float]:
    """Reward, acceptance, per-video-reward means and the ratio/log-prob checks of one step."""
    accepted = scores.is_accepted
    is_label = encoded["labels"][:, 1:] != IGNORE_INDEX
    recomputed = [token_lp[row][is_label[row]].detach() for row in range(len(sampled.tokens))]
    gaps = [
        float((a - b).abs().max()) if len(a) else 0.0
        for a, b in zip(recomputed, sampled.sampler_log_probs, strict=True)
    ]
    metrics = {
        "reward_mean": float(scores.total.mean()),
        "accepted": float(accepted.mean()),
        "contradicted": float(scores.is_contradiction.mean()),
        "format_failed": float(np.mean([v.format_problem is not None for v in scores.verdicts])),
        "rewrite_words": float(np.mean([len(v.text.split()) for v in scores.verdicts])),
        "ratio_mean": float(ratio_N.mean()),
        "kl": float(kl_N.mean()),
        "sampler_logprob_gap": max(gaps),
    }
    for name, values in scores.video_scores.items():
        if accepted.any():
            metrics[f"video_{name}"] = float(np.nanmean(values[accepted]))
    return metrics


def _append_rollouts(
    run_dir: Path,
    step: int,
    batch: RewriteBatch,
    scores: RewriteScores,
    advantages: np.ndarray,
) -> None:
    """One JSON line with every rewrite of the step (a resumed step is written again)."""
    rows = [
        {
            "user": batch.user_prompts[i],
            "rewrite": verdict.text,
            "accepted": verdict.is_accepted,
            "reason": verdict.reason,
            "reward": round(float(scores.total[i]), 4),
            "advantage": round(float(advantages[i]), 4),
            **{
                name: None if np.isnan(values[i]) else round(float(values[i]), 4)
                for name, values in scores.video_scores.items()
            },
        }
        for i, verdict in enumerate(scores.verdicts)
    ]
    with (run_dir / ROLLOUTS_FILE).open("a") as handle:
        handle.write(json.dumps({"step": step, "rewrites": rows}) + "\n")

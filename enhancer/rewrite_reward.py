"""The enhancer's reward in stage 2 (`enhancer.grpo`): one scalar per sampled rewrite.

    accepted rewrite   z_i = sum_m w_m (R_m,i - mean R_m) / std R_m   over the accepted rewrites
                       of its group (`vpt.rewards.combine_rewards` through `RewardSet.combine`,
                       DanceGRPO's advantage-level aggregation), R_m = reward m of the video the
                       frozen generator makes from the rewrite, scored against the USER's prompt
    format/drop        floor_g - failure_penalty       (no video)
    contradiction      floor_g - contradiction_penalty (no video; the lowest reward)

with floor_g = min(0, min of the group's accepted z). Rewrites are judged by the serving checks
(`enhancer.intent.check_rewrite`); the judge (`vpt.eval.judge`) is never a reward.

Shape legend: N rewrites of one step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Protocol

import numpy as np

from enhancer.intent import RewriteVerdict, check_rewrite
from vpt.generator import Generator
from vpt.rewards.reward_set import RewardSet

if TYPE_CHECKING:
    from enhancer.grpo import EnhancerGRPOConfig


@dataclass(frozen=True)
class RewriteBatch:
    """The rewrites of one step, grouped by user prompt."""

    user_prompts: tuple[str, ...]
    """(N,) the user prompt of each rewrite."""
    raw: tuple[str, ...]
    """(N,) the decoded LLM output."""
    tokens: tuple[tuple[int, ...], ...]
    """(N,) the sampled token ids (eos included when it ended)."""
    is_finished: tuple[bool, ...]
    """(N,) whether the rewrite ended (eos) within max_new_tokens."""
    group_ids: np.ndarray
    """(N,) the group (user prompt index) of each rewrite."""
    video_seeds: tuple[tuple[int, ...], ...]
    """Per group, the generator seeds its rewrites share."""


@dataclass(frozen=True)
class RewriteScores:
    """One scalar reward per rewrite and what it came from."""

    total: np.ndarray
    """(N,) the reward the advantages are computed from."""
    verdicts: tuple[RewriteVerdict, ...]
    """(N,) the format and intent checks."""
    video_scores: dict[str, np.ndarray]
    """Reward name -> (N,) raw video scores (NaN for rewrites with no video)."""

    @property
    def is_accepted(self) -> np.ndarray:
        return np.array([v.is_accepted for v in self.verdicts])

    @property
    def is_contradiction(self) -> np.ndarray:
        return np.array([bool(v.intent.contradicted or v.intent.conflicts) for v in self.verdicts])


class RewriteScorer(Protocol):
    """Rewrites in, one scalar reward each out."""

    def __call__(self, batch: RewriteBatch) -> RewriteScores: ...


@dataclass
class VideoRewriteScorer:
    """The enhancer's reward: the video rewards of what `generator` makes from each accepted
    rewrite, scored against the user's prompt; format/intent failures below every video."""

    generator: Generator
    """The frozen generator."""
    rewards: RewardSet
    """The video rewards (never the judge)."""
    config: EnhancerGRPOConfig
    """Limits, penalties and the generator's sampler steps."""
    batch_size: int = 16
    """Videos per generator call."""

    def __call__(self, batch: RewriteBatch) -> RewriteScores:
        limits = self.config.limits
        verdicts = []
        for user, raw, is_finished in zip(
            batch.user_prompts, batch.raw, batch.is_finished, strict=True
        ):
            verdict = check_rewrite(user, raw, limits)
            if not is_finished and verdict.format_problem is None:
                verdict = RewriteVerdict(
                    verdict.text,
                    verdict.intent,
                    f"rewrite did not end within {self.config.sampling.max_new_tokens} tokens",
                )
            verdicts.append(verdict)
        accepted = [i for i, v in enumerate(verdicts) if v.is_accepted]
        count = len(verdicts)
        video_scores = {
            name: np.full(count, np.nan, dtype=np.float64) for name in self.rewards.names
        }
        total = np.zeros(count, dtype=np.float64)
        if accepted:
            measured = self._video_scores(batch, verdicts, accepted)
            for name, values in measured.items():
                video_scores[name][accepted] = values
            total[accepted] = self.rewards.combine(measured, batch.group_ids[accepted])
        for group in np.unique(batch.group_ids):
            members = np.flatnonzero(batch.group_ids == group)
            kept = [i for i in members if verdicts[i].is_accepted]
            floor = min(0.0, float(total[kept].min())) if kept else 0.0
            for i in members:
                intent = verdicts[i].intent
                if intent.contradicted or intent.conflicts:
                    total[i] = floor - self.config.contradiction_penalty
                elif not verdicts[i].is_accepted:
                    total[i] = floor - self.config.failure_penalty
        return RewriteScores(total, tuple(verdicts), video_scores)

    def _video_scores(
        self, batch: RewriteBatch, verdicts: Sequence[RewriteVerdict], accepted: Sequence[int]
    ) -> dict[str, np.ndarray]:
        """Reward name -> (len(accepted),) scores, each averaged over the group's seeds."""
        prompts, users, seeds = [], [], []
        for i in accepted:
            for seed in batch.video_seeds[int(batch.group_ids[i])]:
                prompts.append(verdicts[i].text)
                users.append(batch.user_prompts[i])
                seeds.append(seed)
        sampler = None
        if self.config.generator_steps:
            default = self.generator.config.sampler
            sampler = replace(default, num_steps=self.config.generator_steps)
        videos = self.generator.generate(prompts, seeds, sampler, batch_size=self.batch_size)
        scores = self.rewards.score(videos, users)
        per_seed = self.config.video_seeds
        return {
            name: np.asarray(values, dtype=np.float64).reshape(len(accepted), per_seed).mean(1)
            for name, values in scores.items()
        }

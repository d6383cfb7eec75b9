"""Enhancer stage 2, reward-ranked: the best of n rewrites per user prompt, by the video rewards.

For each user prompt of the pool the starting adapter samples G rewrites (temperature sampling,
seeded), and the user's own prompt joins them as one more candidate: "do not enhance". Every
candidate is rewarded exactly as in GRPO (`enhancer.rewrite_reward.VideoRewriteScorer`): the
learned video rewards and the structural one of the videos the frozen generator makes from it
(`video_seeds` seeds shared by the group, scores averaged), text alignment scored against the
user's prompt, intent failures below every video and contradictions lowest. The candidate with
the highest reward is kept, so a rewrite is kept only where it beats the user's own prompt.

`vpt train enhancer --stage sft --set pairs_file=RUN/ranked.jsonl --set init_adapter=...` then
fine-tunes the adapter on the kept (user prompt, rewrite) pairs: reward-ranked fine-tuning
(RAFT, Dong et al., arXiv 2304.06767; ReST, Gulcehre et al., arXiv 2308.08998), which turns the
rewards into a training signal without the variance of a policy gradient on a handful of groups.

The run reuses the GRPO recipe (`EnhancerGRPOConfig`: prompt pool, group size, sampling, video
seeds, rewards, limits, penalties): `loop.steps` batches of `prompts_per_step` prompts, taken
in order from the pool without repetition. Each finished batch appends one JSON line per user
prompt to `ranked.jsonl`; a rerun skips the batches already there (resume), and a batch is a
pure function of (seed, batch index), so a resumed run writes what an uninterrupted one would.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from enhancer.base_model import ensure_base_model
from enhancer.embedded import load_tokenizer
from enhancer.grpo import (
    EnhancerGRPOConfig,
    check_init_adapter,
    load_policy,
    sample_rewrites,
    step_seed,
    video_scorer,
)
from enhancer.rewrite_reward import RewriteBatch, RewriteScorer
from enhancer.sft import start_run_folder
from vpt.generator import Generator
from vpt.training.grpo_config import training_prompts
from vpt.training.progress import ProgressLog

RANKED_FILE = "ranked.jsonl"
"""One JSON line per user prompt: its candidates, their rewards, and the kept one."""


@dataclass(frozen=True)
class RankingResult:
    """How `run_best_of_n` ended."""

    pairs_file: Path
    """The ranked candidates (`prompt`/`target` of every line are the SFT pair)."""
    prompts: int
    """User prompts ranked so far."""
    rewrites_kept: int
    """Of those, how many kept a rewrite rather than the user's own prompt."""
    seconds: float
    """Wall time of this invocation."""


def batch_prompts(pool: Sequence[str], config: EnhancerGRPOConfig, batch: int) -> list[str]:
    """The user prompts of `batch`: the pool in order, `prompts_per_step` at a time."""
    start = batch * config.prompts_per_step
    return list(pool[start : start + config.prompts_per_step])


def run_best_of_n(
    config: EnhancerGRPOConfig,
    run_dir: Path,
    *,
    generator: Generator | None = None,
    scorer: RewriteScorer | None = None,
) -> RankingResult:
    """Rank candidates for `loop.steps` batches of user prompts (resuming), in `run_dir`.

    `generator` replaces the configured checkpoint (tests pass a tiny one); `scorer` replaces
    the video reward altogether (a known-answer reward in tests).
    """
    if config.init_adapter is None:
        raise ValueError(
            "init_adapter: best-of-n samples from a trained adapter; give the `adapter` folder "
            "of a `vpt train enhancer` (SFT) run"
        )
    check_init_adapter(config)
    pool = training_prompts(config.prompts)
    needed = config.loop.steps * config.prompts_per_step
    if needed > len(pool):
        raise ValueError(
            f"loop.steps x prompts_per_step = {needed} user prompts, but prompts.count is "
            f"{len(pool)}; raise prompts.count or lower loop.steps"
        )
    base = ensure_base_model(config.base_model)
    start_run_folder(run_dir, config)
    out = run_dir / RANKED_FILE
    lines = out.read_text().splitlines() if out.is_file() else []
    done_batches = len(lines) // config.prompts_per_step
    if len(lines) != done_batches * config.prompts_per_step:  # a torn last batch: drop it
        lines = lines[: done_batches * config.prompts_per_step]
        out.write_text("".join(line + "\n" for line in lines))
    if scorer is None:
        scorer = video_scorer(config, generator)
    tokenizer = load_tokenizer(base)
    tokenizer.padding_side = "left"
    model = load_policy(config, base)
    started = time.monotonic()
    progress = ProgressLog(run_dir, config.loop.steps, done_batches, "enhancer best-of-n")
    try:
        for batch in range(done_batches, config.loop.steps):
            users = batch_prompts(pool, config, batch)
            records = rank_batch(model, tokenizer, scorer, config, users, batch)
            with out.open("a") as handle:
                for record in records:
                    handle.write(json.dumps(record) + "\n")
            kept = sum(r["kept"] == "rewrite" for r in records) / len(records)
            progress.advance(1, rewrites_kept=kept)
            progress.log(batch + 1, rewrites_kept=kept, seconds=round(time.monotonic() - started))
    finally:
        progress.close()
    records = [json.loads(line) for line in out.read_text().splitlines()]
    return RankingResult(
        out,
        len(records),
        sum(r["kept"] == "rewrite" for r in records),
        time.monotonic() - started,
    )


def rank_batch(
    model: Any,
    tokenizer: Any,
    scorer: RewriteScorer,
    config: EnhancerGRPOConfig,
    users: list[str],
    batch: int,
) -> list[dict[str, Any]]:
    """One record per user prompt: G sampled rewrites + the user's prompt, rewarded, best kept."""
    group = config.group_size
    repeated = [p for p in users for _ in range(group)]
    sampled = sample_rewrites(
        model, tokenizer, repeated, config.sampling, step_seed(config.loop.seed, batch, 0)
    )
    candidates: list[str] = []
    tokens: list[tuple[int, ...]] = []
    finished: list[bool] = []
    for index, user in enumerate(users):
        rows = range(index * group, (index + 1) * group)
        candidates += [tokenizer.decode(sampled.tokens[r], skip_special_tokens=True) for r in rows]
        tokens += [tuple(sampled.tokens[r]) for r in rows]
        finished += [sampled.is_finished[r] for r in rows]
        candidates.append(user)  # "do not enhance"
        tokens.append(())
        finished.append(True)
    size = group + 1
    group_ids = np.repeat(np.arange(len(users)), size)
    seeds = tuple(
        tuple(
            step_seed(config.loop.seed, batch, 1 + g * config.video_seeds + k) % 2**31
            for k in range(config.video_seeds)
        )
        for g in range(len(users))
    )
    scores = scorer(
        RewriteBatch(
            tuple(u for u in users for _ in range(size)),
            tuple(candidates),
            tuple(tokens),
            tuple(finished),
            group_ids,
            seeds,
        )
    )
    records = []
    for index, user in enumerate(users):
        members = range(index * size, (index + 1) * size)
        totals = [float(scores.total[i]) for i in members]
        best = members[int(np.argmax(totals))]
        is_user = best == members[-1]
        verdict = scores.verdicts[best]
        records.append(
            {
                "batch": batch,
                "prompt": user,
                "target": user if is_user else verdict.text,
                "kept": "user_prompt" if is_user else "rewrite",
                "candidates": [
                    {
                        "text": candidates[i],
                        "accepted": bool(scores.verdicts[i].is_accepted),
                        "reason": scores.verdicts[i].reason,
                        "reward": float(scores.total[i]),
                        **{
                            name: (None if np.isnan(v[i]) else float(v[i]))
                            for name, v in scores.video_scores.items()
                        },
                    }
                    for i in members
                ],
            }
        )
    return records

"""Enhancer best-of-n: the user's prompt competes with the rewrites, the best candidate is kept,
ranking resumes without repeating a batch, and SFT on the kept pairs (from the starting
adapter) learns them. Tiny real Llama (SmolLM2's tokenizer), known-answer scorers."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from enhancer.best_of_n import RANKED_FILE, run_best_of_n
from enhancer.embedded import load_causal_lm, load_tokenizer
from enhancer.grpo import RewriteSampling
from enhancer.rewrite_reward import RewriteBatch, RewriteScores
from enhancer.sft import (
    EnhancerSFTConfig,
    LoraSettings,
    SFTPair,
    attach_lora,
    encode_pairs,
    load_pairs,
    pairs_of_step,
    run_enhancer_sft,
    save_adapter,
    target_loss,
)
from tests.enhancer.test_grpo import tiny_grpo_config, verdicts_of
from vpt.checkpoint import verify_checkpoint
from vpt.training.grpo_config import PromptPoolConfig
from vpt.training.loop import LoopConfig, OptimConfig


class PreferUserPrompt:
    """Known-answer reward: the user's own prompt scores 1, every rewrite 0."""

    def __call__(self, batch: RewriteBatch) -> RewriteScores:
        pairs = zip(batch.user_prompts, batch.raw, strict=True)
        total = np.array([float(raw == user) for user, raw in pairs])
        return RewriteScores(total, verdicts_of(batch), {})


class PreferLongest:
    """Known-answer reward: the candidate's length in characters (the user's prompt is short)."""

    def __call__(self, batch: RewriteBatch) -> RewriteScores:
        total = np.array([float(len(r)) for r in batch.raw])
        return RewriteScores(total, verdicts_of(batch), {"length": total})


@pytest.fixture()
def start_adapter(peaky_llm_dir: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "sft_adapter"
    torch.manual_seed(1)
    model = attach_lora(load_causal_lm(peaky_llm_dir), LoraSettings(rank=2, alpha=4))
    save_adapter(model, folder, "tiny-sft", peaky_llm_dir, {}, 0, {})
    return folder


def ranking_config(llm: Path, adapter: Path, batches: int):  # type: ignore[no-untyped-def]
    return replace(
        tiny_grpo_config(llm, steps=batches),
        init_adapter=str(adapter),
        prompts=PromptPoolConfig(count=8, seed=0, register="short"),
        prompts_per_step=2,
        group_size=3,
        sampling=RewriteSampling(temperature=1.0, max_new_tokens=6),
    )


def read(path: Path) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.slow
def test_the_best_candidate_is_kept_and_the_user_prompt_competes(
    peaky_llm_dir: Path, start_adapter: Path, tmp_path: Path
) -> None:
    config = ranking_config(peaky_llm_dir, start_adapter, batches=2)
    user_wins = run_best_of_n(config, tmp_path / "user", scorer=PreferUserPrompt())
    assert user_wins.prompts == 4 and user_wins.rewrites_kept == 0
    for record in read(user_wins.pairs_file):
        assert record["kept"] == "user_prompt" and record["target"] == record["prompt"]
        assert len(record["candidates"]) == 4  # 3 rewrites + the user's prompt, last
        assert record["candidates"][-1]["text"] == record["prompt"]
    longest = run_best_of_n(config, tmp_path / "longest", scorer=PreferLongest())
    for record in read(longest.pairs_file):
        best = max(record["candidates"], key=lambda c: c["reward"])
        assert record["target"] in (best["text"].strip(), record["prompt"])  # the cleaned text
        assert best["reward"] == max(len(c["text"]) for c in record["candidates"])
        assert best["length"] == best["reward"]
    # the same rewrites are sampled for the same batches whatever the scorer
    texts = [[c["text"] for c in r["candidates"]] for r in read(user_wins.pairs_file)]
    assert texts == [[c["text"] for c in r["candidates"]] for r in read(longest.pairs_file)]


@pytest.mark.slow
def test_ranking_resumes_without_repeating_a_batch(
    peaky_llm_dir: Path, start_adapter: Path, tmp_path: Path
) -> None:
    config = ranking_config(peaky_llm_dir, start_adapter, batches=3)
    straight = run_best_of_n(config, tmp_path / "straight", scorer=PreferLongest())
    part = replace(config, loop=replace(config.loop, steps=1))
    run_best_of_n(part, tmp_path / "resumed", scorer=PreferLongest())
    with (tmp_path / "resumed" / RANKED_FILE).open("a") as handle:
        handle.write('{"torn": true}\n')  # a batch cut short by a kill: one of its two lines
    resumed = run_best_of_n(config, tmp_path / "resumed", scorer=PreferLongest())
    assert resumed.prompts == straight.prompts == 6
    assert read(resumed.pairs_file) == read(straight.pairs_file)
    prompts = [r["prompt"] for r in read(straight.pairs_file)]
    assert len(set(prompts)) == len(prompts)  # the pool in order, no prompt twice


def test_bad_ranking_requests_name_the_problem(peaky_llm_dir: Path, tmp_path: Path) -> None:
    config = ranking_config(peaky_llm_dir, tmp_path, batches=2)
    with pytest.raises(ValueError, match="init_adapter"):
        run_best_of_n(replace(config, init_adapter=None), tmp_path / "run")
    with pytest.raises(ValueError, match="init_adapter"):
        run_best_of_n(config, tmp_path / "run")  # tmp_path holds no adapter


def test_pairs_file_errors_name_file_and_line(tmp_path: Path) -> None:
    good = tmp_path / "good.jsonl"
    good.write_text('{"prompt": "red circle", "target": "a red circle moving left"}\n\n')
    assert load_pairs(good) == [SFTPair("red circle", "a red circle moving left")]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "red circle", "target": "x"}\n{"prompt": "blue"}\n')
    with pytest.raises(ValueError, match="line 2"):
        load_pairs(bad)
    with pytest.raises(ValueError, match="does not exist"):
        load_pairs(tmp_path / "missing.jsonl")
    empty = tmp_path / "empty.jsonl"
    empty.write_text('{"prompt": " ", "target": "x"}\n')
    with pytest.raises(ValueError, match="empty prompt"):
        load_pairs(empty)


def test_each_epoch_visits_every_pair_once() -> None:
    pairs = [SFTPair(f"p{i}", f"t{i}") for i in range(5)]
    first_epoch = [p for step in range(5) for p in pairs_of_step(pairs, step, 1, seed=0)]
    assert sorted(p.prompt for p in first_epoch) == [p.prompt for p in pairs]
    assert pairs_of_step(pairs, 3, 2, seed=0) == pairs_of_step(pairs, 3, 2, seed=0)


@pytest.mark.slow
def test_sft_on_ranked_pairs_continues_the_adapter_and_learns_them(
    peaky_llm_dir: Path, start_adapter: Path, tmp_path: Path
) -> None:
    pairs_file = tmp_path / "ranked.jsonl"
    pairs = [("red circle", "a large red circle moving quickly"), ("blue box", "a big blue box")]
    pairs_file.write_text("".join(json.dumps({"prompt": p, "target": t}) + "\n" for p, t in pairs))
    config = EnhancerSFTConfig(
        base_model=str(peaky_llm_dir),
        init_adapter=str(start_adapter),
        pairs_file=str(pairs_file),
        batch_size=2,
        optim=OptimConfig(
            lr=5e-2, warmup_steps=0, decay="constant", weight_decay=0.0, ema_decay=0.0
        ),
        loop=LoopConfig(steps=30, log_every=1, save_every=10),
        version="tiny-ranked",
    )
    tokenizer = load_tokenizer(peaky_llm_dir)
    batch = encode_pairs(tokenizer, [SFTPair(p, t) for p, t in pairs])

    def loss_of(adapter: Path) -> float:
        with torch.no_grad():
            return float(target_loss(load_causal_lm(peaky_llm_dir, adapter), batch))

    result = run_enhancer_sft(config, tmp_path / "run")
    assert result.adapter is not None
    assert loss_of(result.adapter) < 0.6 * loss_of(start_adapter)
    manifest = verify_checkpoint(result.adapter)
    assert manifest.stage == "enhancer-ranked-sft" and manifest.parent == str(start_adapter)

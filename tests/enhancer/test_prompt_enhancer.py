"""PromptEnhancer with both backends: the embedded one on a tiny real Llama, the vLLM one against
a fake OpenAI-compatible HTTP server (a process boundary: it speaks the same wire protocol as
vLLM; the real server is in test_vllm_server.py)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import torch

from enhancer.embedded import EmbeddedBackend, load_causal_lm, load_tokenizer
from enhancer.prompt_enhancer import (
    BackendError,
    EnhancerConfig,
    GenerationSettings,
    PromptEnhancer,
    VLLMEndpoint,
)
from enhancer.sft import LoraSettings, attach_lora
from enhancer.vllm_backend import VLLMBackend


@dataclass
class FakeOpenAI:
    """Answers chat completions from a script: user prompt -> (content, delay s, status)."""

    script: dict[str, tuple[str, float, int]] = field(default_factory=dict)
    requests: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    loaded: list[str] = field(default_factory=list)


@pytest.fixture()
def fake_openai() -> Iterator[tuple[FakeOpenAI, str]]:
    state = FakeOpenAI()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _send(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._send(200, {"data": [{"id": "smollm2"}, *({"id": n} for n in state.loaded)]})

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            state.requests.append((self.path, body))
            if self.path == "/v1/load_lora_adapter":
                state.loaded.append(body["lora_name"])
                return self._send(200, {})
            if self.path == "/v1/unload_lora_adapter":
                state.loaded.remove(body["lora_name"])
                return self._send(200, {})
            user = body["messages"][-1]["content"]
            content, delay, status = state.script.get(user, ("", 0.0, 200))
            time.sleep(delay)
            if status != 200:
                return self._send(status, {"error": "scripted failure"})
            self._send(200, {"choices": [{"message": {"role": "assistant", "content": content}}]})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def vllm_enhancer(url: str, timeout_s: float = 5.0, retries: int = 1) -> PromptEnhancer:
    endpoint = VLLMEndpoint(url=url, retries=retries)
    config = EnhancerConfig(backend="vllm", vllm=endpoint, timeout_s=timeout_s)
    return PromptEnhancer(VLLMBackend(endpoint), config)


def test_vllm_backend_accepts_a_faithful_rewrite(fake_openai: tuple[FakeOpenAI, str]) -> None:
    state, url = fake_openai
    rewrite = "a large red circle moving left slowly over a black background"
    state.script["red ball going left"] = (f'"{rewrite}"', 0.0, 200)
    result = vllm_enhancer(url).enhance("  red ball going left ")
    assert result.prompt == rewrite
    assert not result.fell_back and result.reason is None
    assert result.user_prompt == "red ball going left"
    assert result.backend == "vllm" and result.adapter is None
    path, body = state.requests[0]
    assert path == "/v1/chat/completions"
    assert body["model"] == "smollm2" and body["temperature"] == 0.0
    assert body["messages"][0]["role"] == "system"


def test_vllm_backend_falls_back_on_contradiction_timeout_and_errors(
    fake_openai: tuple[FakeOpenAI, str],
) -> None:
    state, url = fake_openai
    state.script["red ball going left"] = ("a blue circle moving left", 0.0, 200)
    state.script["green box"] = ("a green square moving up", 2.0, 200)
    state.script["cyan block"] = ("", 0.0, 500)
    enhancer = vllm_enhancer(url, timeout_s=0.5)
    contradiction, timeout, error = enhancer.enhance_batch(
        ["red ball going left", "green box", "cyan block"]
    )
    assert contradiction.fell_back and contradiction.prompt == "red ball going left"
    assert contradiction.rewrite == "a blue circle moving left"
    assert contradiction.reason == "rewrite contradicts the user's prompt: color red->blue"
    assert timeout.fell_back and timeout.prompt == "green box"
    assert timeout.rewrite is None and (timeout.reason or "").startswith("timeout")
    assert error.fell_back and error.prompt == "cyan block"
    assert (error.reason or "").startswith("backend error") and "500" in (error.reason or "")


def test_a_rejected_rewrite_is_asked_for_again_by_sampling(
    fake_openai: tuple[FakeOpenAI, str],
) -> None:
    state, url = fake_openai
    state.script["red ball going left"] = ("a blue circle moving left", 0.0, 200)
    endpoint = VLLMEndpoint(url=url)
    config = EnhancerConfig(backend="vllm", vllm=endpoint, resample_attempts=2)
    result = PromptEnhancer(VLLMBackend(endpoint), config).enhance("red ball going left")
    assert result.fell_back and result.attempts == 3
    assert result.reason == "rewrite contradicts the user's prompt: color red->blue"
    temperatures = [body["temperature"] for _, body in state.requests]
    assert temperatures == [0.0, config.resample_temperature, config.resample_temperature]


class ScriptedBackend:
    """Answers from a list per call: the greedy answer first, then the sampled ones."""

    name = "scripted"
    adapter = None

    def __init__(self, answers: list[str | BackendError]) -> None:
        self.answers = answers
        self.calls: list[tuple[list[str], float | None]] = []

    def rewrite(
        self, prompts: Sequence[str], timeout_s: float, temperature: float | None = None
    ) -> list[str | BackendError]:
        self.calls.append((list(prompts), temperature))
        return [self.answers[min(len(self.calls), len(self.answers)) - 1]] * len(prompts)


def test_resampling_uses_the_first_accepted_rewrite_and_only_asks_for_rejected_ones() -> None:
    good = "a large red circle moving left over a black background"
    backend = ScriptedBackend(["a blue circle moving left", "a circle moving left", good])
    config = EnhancerConfig(resample_attempts=3, resample_temperature=0.5)
    result = PromptEnhancer(backend, config).enhance("red ball going left")
    assert not result.fell_back and result.prompt == good and result.attempts == 3
    assert [t for _, t in backend.calls] == [None, 0.5, 0.5]
    # a failed resample call keeps the rejection: the user's prompt, with its reason
    failing = ScriptedBackend(["a blue circle moving left", BackendError("down")])
    result = PromptEnhancer(failing, config).enhance("red ball going left")
    assert result.fell_back and result.prompt == "red ball going left"
    assert result.reason == "rewrite contradicts the user's prompt: color red->blue"
    # accepted prompts of a batch are not asked for again
    mixed = ScriptedBackend([good])
    results = PromptEnhancer(mixed, config).enhance_batch(["red ball going left"] * 2)
    assert len(mixed.calls) == 1 and all(r.attempts == 1 for r in results)
    none = ScriptedBackend(["a blue circle moving left"])
    result = PromptEnhancer(none, EnhancerConfig(resample_attempts=0)).enhance("red ball")
    assert result.fell_back and len(none.calls) == 1


def test_vllm_backend_reports_server_errors(fake_openai: tuple[FakeOpenAI, str]) -> None:
    state, url = fake_openai
    state.script["cyan block"] = ("", 0.0, 500)
    result = vllm_enhancer(url).enhance("cyan block")
    assert result.fell_back and result.prompt == "cyan block"
    assert "answered 500" in (result.reason or "")


def test_unreachable_server_falls_back_after_retries() -> None:
    from enhancer.vllm_server import free_port

    result = vllm_enhancer(f"http://127.0.0.1:{free_port()}", retries=2).enhance("red ball")
    assert result.fell_back and result.prompt == "red ball"
    assert "unreachable" in (result.reason or "")


def test_swap_adapter_loads_new_version_then_unloads_old(
    fake_openai: tuple[FakeOpenAI, str], tmp_path: Path
) -> None:
    state, url = fake_openai
    for version in ("enhancer-v1", "enhancer-v2"):
        (tmp_path / version).mkdir()
        (tmp_path / version / "adapter_config.json").write_text("{}")
    backend = VLLMBackend(VLLMEndpoint(url=url))
    assert backend.swap_adapter("enhancer-v1", tmp_path / "enhancer-v1") is None
    assert backend.swap_adapter("enhancer-v2", tmp_path / "enhancer-v2") == "enhancer-v1"
    admin = [(path, body["lora_name"]) for path, body in state.requests]
    assert admin == [
        ("/v1/load_lora_adapter", "enhancer-v1"),
        ("/v1/load_lora_adapter", "enhancer-v2"),
        ("/v1/unload_lora_adapter", "enhancer-v1"),
    ]
    assert backend.models() == ["smollm2", "enhancer-v2"]
    state.script["red ball"] = ("a red circle moving left", 0.0, 200)
    result = PromptEnhancer(backend).enhance("red ball")
    assert result.adapter == "enhancer-v2"
    assert state.requests[-1][1]["model"] == "enhancer-v2"
    with pytest.raises(Exception, match="already in use"):
        backend.swap_adapter("enhancer-v2", tmp_path / "enhancer-v2")


def test_bad_prompts_are_refused_with_a_clear_error(fake_openai: tuple[FakeOpenAI, str]) -> None:
    _, url = fake_openai
    enhancer = vllm_enhancer(url)
    with pytest.raises(ValueError, match="prompt is empty"):
        enhancer.enhance("   ")
    with pytest.raises(ValueError, match="must be a string"):
        enhancer.enhance(None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="characters"):
        enhancer.enhance("red " * 400)
    with pytest.raises(ValueError, match="list of prompts"):
        enhancer.enhance_batch("red ball")


def test_bad_config_is_refused() -> None:
    with pytest.raises(ValueError, match="timeout_s"):
        EnhancerConfig(timeout_s=0)
    with pytest.raises(ValueError, match="temperature"):
        GenerationSettings(temperature=-1)
    with pytest.raises(ValueError, match="resample_attempts"):
        EnhancerConfig(resample_attempts=-1)
    with pytest.raises(ValueError, match="resample_temperature"):
        EnhancerConfig(resample_temperature=0.0)


def test_embedded_backend_is_deterministic_and_rejects_garbage(tiny_llm_dir: Path) -> None:
    backend = EmbeddedBackend.load(tiny_llm_dir, settings=GenerationSettings(max_new_tokens=8))
    enhancer = PromptEnhancer(backend, EnhancerConfig(resample_attempts=0))
    first = enhancer.enhance_batch(["red ball going left", "a small green triangle"])
    second = enhancer.enhance_batch(["red ball going left", "a small green triangle"])
    assert [r.rewrite for r in first] == [r.rewrite for r in second]  # greedy
    for result in first:
        # a random tiny model cannot state the user's attributes: always the user's prompt
        assert result.fell_back and result.prompt == result.user_prompt
        assert result.rewrite is not None and result.backend == "embedded"


def test_embedded_backend_times_out_into_fallback(tiny_llm_dir: Path) -> None:
    backend = EmbeddedBackend.load(tiny_llm_dir, settings=GenerationSettings(max_new_tokens=64))
    config = EnhancerConfig(timeout_s=1e-4)
    result = PromptEnhancer(backend, config).enhance("red ball")
    assert result.fell_back and result.rewrite is None
    assert (result.reason or "").startswith("timeout")


def test_embedded_backend_applies_a_lora_adapter(tiny_llm_dir: Path, tmp_path: Path) -> None:
    torch.manual_seed(1)
    model = attach_lora(load_causal_lm(tiny_llm_dir), LoraSettings(rank=4, alpha=8))
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 2.0)  # a non-trivial update (B starts at zero)
    model.save_pretrained(tmp_path / "adapter-v1")
    settings = GenerationSettings(max_new_tokens=8)
    base = EmbeddedBackend.load(tiny_llm_dir, settings=settings)
    tuned = EmbeddedBackend.load(tiny_llm_dir, tmp_path / "adapter-v1", settings)
    assert tuned.adapter == "adapter-v1" and base.adapter is None
    prompts = ["red ball going left"]
    inputs = base.encode_chats(prompts)
    with torch.no_grad():
        base_logits = base.model(**inputs).logits
        tuned_logits = tuned.model(**inputs).logits
    assert not torch.allclose(base_logits, tuned_logits)
    tokenizer = load_tokenizer(tiny_llm_dir)
    assert tokenizer.padding_side == "left"


def test_enhanced_system_renders_the_rewrites(fake_openai: tuple[FakeOpenAI, str]) -> None:
    from enhancer.system import EnhancedSystem
    from vpt.eval.systems import world_system

    state, url = fake_openai
    detailed = "a large red circle moving left slowly over a black background"
    state.script["red ball"] = (detailed, 0.0, 200)
    state.script["cyan block"] = ("a blue square", 0.0, 200)  # contradiction: falls back
    world = world_system("clean")
    system = EnhancedSystem(vllm_enhancer(url), world, name="world+enhancer")
    prompts, seeds = ["red ball", "cyan block", "red ball"], [0, 0, 1]
    videos = system.generate(prompts, seeds)
    expected = world.generate([detailed, "cyan block", detailed], seeds)
    assert videos.dtype == expected.dtype and (videos == expected).all()
    # each distinct prompt enhanced once; the rejected one asked for again 3 times
    assert len(state.requests) == 2 + 3
    assert system.enhanced["cyan block"].fell_back


def test_intent_report_counts_known_rewrites(fake_openai: tuple[FakeOpenAI, str]) -> None:
    from enhancer.evaluation import evaluate_intent

    state, url = fake_openai
    state.script["red ball going left"] = (
        "a large red circle moving left slowly over a black background",  # kept, complete
        0.0,
        200,
    )
    state.script["green box"] = ("a blue square moving up", 0.0, 200)  # color contradicted
    state.script["tiny triangle"] = ("a triangle moving up fast", 0.0, 200)  # size dropped
    state.script["cyan block"] = ("", 0.0, 500)  # no rewrite
    prompts = ["red ball going left", "green box", "tiny triangle", "cyan block"]
    report = evaluate_intent(vllm_enhancer(url), prompts, batch_size=3)
    assert report.prompts == 4
    assert report.preserved == 1 and report.accepted == 1
    assert report.contradicted == 1 and report.backend_failures == 1
    assert report.complete == 1
    # stated: 3 + 2 + 2 + 2; kept: 3 + 1 (shape) + 1 (shape)
    assert report.attributes_stated == 9 and report.attributes_kept == 5
    summary = report.summary()
    assert summary["preservation_rate"] == 0.25
    assert summary["attribute_keep_rate"] == 5 / 9


def test_build_enhancer_and_the_enhance_command(
    tiny_llm_dir: Path, fake_openai: tuple[FakeOpenAI, str], capsys: pytest.CaptureFixture[str]
) -> None:
    from enhancer.build import build_enhancer
    from enhancer.cli import main

    state, url = fake_openai
    state.script["red ball"] = ("a red circle moving left", 0.0, 200)
    remote = build_enhancer(EnhancerConfig(backend="vllm", vllm=VLLMEndpoint(url=url)))
    assert isinstance(remote.backend, VLLMBackend)
    assert remote.enhance("red ball").prompt == "a red circle moving left"
    local = build_enhancer(EnhancerConfig(base_model=str(tiny_llm_dir)))
    assert isinstance(local.backend, EmbeddedBackend)

    status = main(["enhance", "--backend", "vllm", "--url", url, "--prompt", "red ball"])
    assert status == 0
    line = json.loads(capsys.readouterr().out.strip())
    assert line["prompt"] == "a red circle moving left" and line["fell_back"] is False
    assert main(["enhance", "--backend", "vllm", "--url", url]) == 2
    assert "give --prompt" in capsys.readouterr().err

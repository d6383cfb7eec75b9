"""The service with the `openai` enhancer backend, against a fake OpenAI-compatible HTTP server on
127.0.0.1 (a process boundary: it speaks the chat-completions wire protocol vLLM speaks; the real
vLLM server is in tests/enhancer/test_vllm_server.py). The generator gets the accepted rewrite,
both prompts are reported, and every failure falls back to the user's prompt with its label."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from serving.client import VideoClient
from serving.config import (
    EnhancementConfig,
    OpenAIEnhancerConfig,
    ServeConfig,
    load_serve_config,
)
from serving.enhancement import (
    EnhancementHook,
    EnhancerError,
    OpenAIChatEnhancer,
    OpenAIEndpoint,
    build_enhancer,
)
from serving.events.sqlite_bus import SqliteEventBus
from serving.models import ModelRegistry
from serving.protos import events_pb, types_pb
from serving.server import ServingApp
from tests.serving.conftest import API_KEY, BackgroundServer, free_port, serve_config
from vpt.checkpoint import load_generator
from vpt.config import ConfigError
from vpt.prompt_rewriting import RewriteLimits, chat_messages

USER = "red circle moving left"
REWRITE = "a large red circle moving left slowly over a black background"
KEY_ENV = "VPT_TEST_ENHANCER_KEY"


@dataclass
class FakeOpenAI:
    """Answers chat completions from a script: user prompt -> (content, delay s, status)."""

    url: str = ""
    script: dict[str, tuple[str, float, int]] = field(default_factory=dict)
    requests: list[tuple[str, dict[str, str], dict[str, Any]]] = field(default_factory=list)

    def requests_for(self, prompt: str) -> list[dict[str, Any]]:
        return [body for _, _, body in self.requests if body["messages"][-1]["content"] == prompt]


@pytest.fixture(scope="module")
def fake_openai() -> Iterator[FakeOpenAI]:
    state = FakeOpenAI()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            data = json.dumps({"data": [{"id": "smollm2"}, {"id": "enhancer-v3"}]}).encode()
            self.send_response(200 if self.path == "/v1/models" else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            state.requests.append((self.path, dict(self.headers), body))
            content, delay, status = state.script.get(body["messages"][-1]["content"], ("", 0, 200))
            time.sleep(delay)
            answer: dict[str, Any] = {"error": {"message": "scripted failure"}}
            if status == 200:
                answer = {"choices": [{"message": {"role": "assistant", "content": content}}]}
            data = json.dumps(answer).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
                pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def openai_config(state_dir: Path, url: str, http_timeout: float = 0.5) -> ServeConfig:
    config = serve_config(state_dir)
    enhancement = EnhancementConfig(
        backend="openai",
        timeout_seconds=5.0,
        is_default_enabled=True,
        openai=OpenAIEnhancerConfig(
            base_url=url,
            base_url_env="",
            model="enhancer-v3",
            api_key_env=KEY_ENV,
            max_tokens=48,
            timeout_seconds=http_timeout,
        ),
    )
    return replace(config, enhancement=enhancement)


@pytest.fixture(scope="module")
def enhanced_server(
    tmp_path_factory: pytest.TempPathFactory,
    tiny_checkpoints: dict[str, Path],
    fake_openai: FakeOpenAI,
) -> Iterator[BackgroundServer]:
    os.environ[KEY_ENV] = "sk-enhancer"
    try:
        config = openai_config(tmp_path_factory.mktemp("enhanced"), fake_openai.url)
        config.validate()
        registry = ModelRegistry("shapes")
        registry.stage(tiny_checkpoints["tiny-a"])
        bus = SqliteEventBus(Path(config.state_dir) / "events.sqlite")
        app = ServingApp(config, registry, bus, keys=[API_KEY])
    finally:
        del os.environ[KEY_ENV]
    running = BackgroundServer(app)
    yield running
    running.stop()


def result_name(result: int) -> str:
    """`PROMPT_ENHANCEMENT_RESULT_REJECTED` -> `rejected`."""
    name = types_pb.PromptEnhancementResult.Name(result)  # type: ignore[arg-type]
    return name.removeprefix("PROMPT_ENHANCEMENT_RESULT_").lower()


def enhancement_count(server: BackgroundServer, result: str) -> float:
    value = server.app.metrics.registry.get_sample_value(
        "vpt_prompt_enhancements_total", {"result": result}
    )
    assert value is not None, f"no series for result {result}"
    return value


def generation_event(server: BackgroundServer, generation_id: str) -> events_pb.Event:
    """The GenerationCompleted event of `generation_id`, read from the SQLite log file."""
    reader = SqliteEventBus(Path(server.app.config.state_dir) / "events.sqlite")
    consumer = reader.consumer(f"reader-{time.monotonic_ns()}", [server.app.topics.generations])
    deadline = time.monotonic() + 10
    try:
        while time.monotonic() < deadline:
            for record in consumer.poll(0.2, max_records=10_000):
                event = events_pb.Event.FromString(record.value)
                if event.generation_completed.generation_id == generation_id:
                    return event
    finally:
        consumer.close()
        reader.close()
    raise AssertionError(f"no GenerationCompleted event for {generation_id}")


def test_the_generator_renders_the_accepted_rewrite_and_both_prompts_are_reported(
    enhanced_server: BackgroundServer, fake_openai: FakeOpenAI, tiny_checkpoints: dict[str, Path]
) -> None:
    fake_openai.script[USER] = (f'Prompt: "{REWRITE}"\n\nThis keeps every detail.', 0.0, 200)
    before = enhancement_count(enhanced_server, "enhanced")
    with VideoClient(enhanced_server.target, api_key=API_KEY) as api:
        result = api.generate(USER, seed=7)
        status = api.get_generation(result.generation_id)
    started = result.started
    assert (started.prompt, started.effective_prompt) == (USER, REWRITE)
    assert (
        started.is_prompt_enhanced and result_name(started.prompt_enhancement_result) == "enhanced"
    )
    generator = load_generator(tiny_checkpoints["tiny-a"]).generator
    rendered = generator.generate([REWRITE, USER], [7, 7])
    np.testing.assert_array_equal(result.frames, rendered[0])  # the rewrite was generated
    assert not np.array_equal(rendered[0], rendered[1])  # ... which differs from the user's
    event = generation_event(enhanced_server, result.generation_id).generation_completed
    assert (event.prompt, event.effective_prompt) == (USER, REWRITE)
    assert result_name(event.prompt_enhancement_result) == "enhanced"
    assert (status.prompt, status.effective_prompt) == (USER, REWRITE)
    assert enhancement_count(enhanced_server, "enhanced") == before + 1
    path, headers, body = fake_openai.requests[-1]
    assert path == "/v1/chat/completions"
    assert headers["Authorization"] == "Bearer sk-enhancer"
    assert body["model"] == "enhancer-v3" and body["messages"] == chat_messages(USER)
    assert body["max_tokens"] == 48 and body["temperature"] == 0.0


@pytest.mark.parametrize(
    ("prompt", "answer", "result", "reason"),
    [
        ("red circle going left", "a large red circle over a black background", "rejected",
         "drops direction"),
        ("blue square moving up", "a large red square moving up slowly", "rejected",
         "contradicts the user's prompt: color"),
        ("green triangle", "a small green triangle " + "very " * 70, "rejected", "more than 60"),
        ("yellow star", "yellow star", "unchanged", None),
        ("purple circle", "   ", "empty", "answered nothing"),
    ],
)  # fmt: skip
def test_unusable_rewrites_fall_back_to_the_user_prompt(
    enhanced_server: BackgroundServer,
    fake_openai: FakeOpenAI,
    prompt: str,
    answer: str,
    result: str,
    reason: str | None,
) -> None:
    fake_openai.script[prompt] = (answer, 0.0, 200)
    before = enhancement_count(enhanced_server, result)
    with VideoClient(enhanced_server.target, api_key=API_KEY) as api:
        generated = api.generate(prompt, seed=1)
    started = generated.started
    assert (started.prompt, started.effective_prompt) == (prompt, prompt)
    assert (
        not started.is_prompt_enhanced and result_name(started.prompt_enhancement_result) == result
    )
    event = generation_event(enhanced_server, generated.generation_id).generation_completed
    assert (event.prompt, event.effective_prompt) == (prompt, prompt)
    assert result_name(event.prompt_enhancement_result) == result
    assert enhancement_count(enhanced_server, result) == before + 1
    requests = fake_openai.requests_for(prompt)
    # a rejected rewrite is asked for again, sampled (the service's default: 3 more)
    assert len(requests) == (4 if result == "rejected" else 1)
    assert [r["temperature"] for r in requests[1:]] == [0.7] * (len(requests) - 1)
    if reason is not None:  # the hook says why, for the log
        hook: EnhancementHook = enhanced_server.app.enhancement
        verdict = enhanced_server.call(hook.enhance(prompt, True))
        assert verdict.result == result and reason in (verdict.reason or "")


@pytest.mark.parametrize(
    ("prompt", "delay", "status", "result"),
    [
        ("cyan square moving down", 2.0, 200, "timeout"),  # > the 0.5 s HTTP timeout
        ("white circle moving right", 0.0, 500, "error"),
        ("orange triangle moving up", 0.0, 404, "error"),  # e.g. an adapter that is not loaded
    ],
)
def test_a_slow_or_failing_server_falls_back(
    enhanced_server: BackgroundServer,
    fake_openai: FakeOpenAI,
    prompt: str,
    delay: float,
    status: int,
    result: str,
) -> None:
    fake_openai.script[prompt] = (f"a large {prompt} slowly", delay, status)
    before = enhancement_count(enhanced_server, result)
    started_at = time.monotonic()
    with VideoClient(enhanced_server.target, api_key=API_KEY) as api:
        generated = api.generate(prompt, seed=2)
    assert time.monotonic() - started_at < 5.0  # the HTTP timeout, not the server, decides
    started = generated.started
    assert (started.prompt, started.effective_prompt) == (prompt, prompt)
    assert (
        result_name(started.prompt_enhancement_result) == result and not started.is_prompt_enhanced
    )
    assert enhancement_count(enhanced_server, result) == before + 1


def test_a_request_that_opts_out_is_not_sent_to_the_enhancer(
    enhanced_server: BackgroundServer, fake_openai: FakeOpenAI
) -> None:
    before = enhancement_count(enhanced_server, "disabled")
    with VideoClient(enhanced_server.target, api_key=API_KEY) as api:
        generated = api.generate("pink square", seed=3, enhance=False)
    assert result_name(generated.started.prompt_enhancement_result) == "disabled"
    assert generated.started.effective_prompt == "pink square"
    assert fake_openai.requests_for("pink square") == []
    assert enhancement_count(enhanced_server, "disabled") == before + 1


def test_the_hook_budget_bounds_a_slow_server_too(fake_openai: FakeOpenAI) -> None:
    fake_openai.script["gray circle"] = ("a gray circle moving left", 1.0, 200)
    enhancer = OpenAIChatEnhancer(OpenAIEndpoint(fake_openai.url, "smollm2", timeout_seconds=5))
    hook = EnhancementHook(enhancer, timeout_seconds=0.2)

    async def run() -> tuple[str, str, float]:
        try:
            outcome = await hook.enhance("gray circle", True)
        finally:
            await hook.close()
        return outcome.prompt, outcome.result, outcome.seconds

    prompt, result, seconds = asyncio.run(run())
    assert (prompt, result) == ("gray circle", "timeout") and seconds < 0.9


def test_an_unreachable_server_is_an_error() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    enhancer = OpenAIChatEnhancer(OpenAIEndpoint(url, "smollm2", timeout_seconds=2))

    async def run() -> None:
        try:
            await enhancer.enhance("red ball")
        finally:
            await enhancer.close()

    with pytest.raises(EnhancerError, match="unreachable"):
        asyncio.run(run())
    hook = EnhancementHook(OpenAIChatEnhancer(OpenAIEndpoint(url, "smollm2")), 2.0)
    assert asyncio.run(hook.enhance("red ball", True)).result == "error"


def test_enhancement_config_errors_name_the_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "serving.yaml"
    cases = {
        "enhancement:\n  backend: gpt\n": r"config\.enhancement\.backend: 'gpt' is not one of",
        "enhancement:\n  backend: openai\n  openai: {base_url: localhost:8000}\n": (
            r"enhancement\.openai\.base_url: must be an http:// or https:// URL"
        ),
        "enhancement:\n  backend: openai\n  openai: {max_tokens: 0}\n": (
            r"enhancement\.openai\.max_tokens: must be in 1\.\.4096, got 0"
        ),
        "enhancement:\n  backend: openai\n  openai: {timeout_seconds: -1}\n": (
            r"enhancement\.openai\.timeout_seconds: must be in \(0, 600\]"
        ),
        "enhancement:\n  backend: openai\n  openai: {model: ' '}\n": r"enhancement\.openai\.model",
        "enhancement:\n  openai: {temprature: 0}\n": r"config\.enhancement\.openai: unknown key",
        "enhancement:\n  limits: {min_words: 9, max_words: 4}\n": (
            r"config\.enhancement\.limits: rewrite limits need 1 <= min_words <= max_words"
        ),
    }
    for text, message in cases.items():
        config.write_text(text)
        with pytest.raises(ConfigError, match=message):
            load_serve_config(config)
    monkeypatch.setenv("VPT_ENHANCER_URL", "ftp://example")
    with pytest.raises(ConfigError, match=r"base_url \(from \$VPT_ENHANCER_URL\)"):
        load_serve_config(None, ["enhancement.backend=openai"])
    monkeypatch.setenv("VPT_ENHANCER_URL", "http://10.0.0.7:8000/v1")
    monkeypatch.setenv("VPT_ENHANCER_API_KEY", "sk-from-env")
    config.write_text(
        "enhancement:\n  backend: openai\n  timeout_seconds: 3\n"
        "  openai: {model: enhancer-v2, max_tokens: 32}\n  limits: {max_words: 40}\n"
    )
    loaded = load_serve_config(config)
    assert loaded.enhancement.limits == RewriteLimits(max_words=40)
    enhancer = build_enhancer(loaded.enhancement)
    assert isinstance(enhancer, OpenAIChatEnhancer)
    assert enhancer.url == "http://10.0.0.7:8000/v1/chat/completions"
    assert enhancer.endpoint.api_key == "sk-from-env" and enhancer.endpoint.model == "enhancer-v2"
    assert enhancer.request_body("red ball")["max_tokens"] == 32
    assert build_enhancer(load_serve_config(None).enhancement) is None


def test_the_start_up_check_names_what_is_wrong(
    enhanced_server: BackgroundServer, fake_openai: FakeOpenAI
) -> None:
    assert enhanced_server.call(enhanced_server.app.enhancement.check()) is None

    def problem(url: str, model: str) -> str | None:
        async def run() -> str | None:
            return await OpenAIChatEnhancer(OpenAIEndpoint(url, model, timeout_seconds=2)).check()

        return asyncio.run(run())

    assert problem(fake_openai.url, "enhancer-v3") is None
    wrong = problem(fake_openai.url, "enhancer-v9") or ""
    assert "'enhancer-v9' is not served" in wrong and "smollm2, enhancer-v3" in wrong
    assert "answered 404" in (problem(fake_openai.url + "/nope", "smollm2") or "")
    assert "unreachable" in (problem(f"http://127.0.0.1:{free_port()}/v1", "smollm2") or "")
    assert asyncio.run(EnhancementHook(None, 1.0).check()) is None

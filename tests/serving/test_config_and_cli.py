"""Serving config validation, the `vpt client` commands against a running server, the
enhancement hook's fallbacks, and the proto build."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from serving.build_protos import GENERATED, is_up_to_date, source_stamp
from serving.config import SHIPPED_MODEL, load_serve_config
from serving.enhancement import EnhancementHook, IdentityEnhancer
from tests.serving.conftest import API_KEY, BackgroundServer
from vpt.cli.main import main as vpt_main
from vpt.config import ConfigError


def test_config_errors_name_the_key(tmp_path: Path) -> None:
    config = tmp_path / "serving.yaml"
    config.write_text("admission:\n  max_queue: ten\n")
    with pytest.raises(ConfigError, match=r"config\.admission\.max_queue: expected int"):
        load_serve_config(config)
    config.write_text("server:\n  prot: 1\n")
    with pytest.raises(ConfigError, match="unknown key"):
        load_serve_config(config)
    config.write_text("events:\n  backend: rabbit\n")
    with pytest.raises(ConfigError, match=r"events\.backend"):
        load_serve_config(config)
    config.write_text("server:\n  port: 70000\n")
    with pytest.raises(ConfigError, match=r"server\.port: must be in 0\.\.65535"):
        load_serve_config(config)
    loaded = load_serve_config(config, ["server.port=1234", "admission.max_concurrent=2"])
    assert loaded.server.port == 1234 and loaded.admission.max_concurrent == 2


def test_vpt_serve_refuses_a_bad_config_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "serving.yaml"
    config.write_text("model:\n  threads: 0\n")
    with pytest.raises(SystemExit) as exited:
        vpt_main(["serve", "--config", str(config)])
    assert exited.value.code == 2
    assert capsys.readouterr().err.strip() == "error: model.threads: must be >= 1"


def test_vpt_client_generate_feedback_status(
    server: BackgroundServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    common = ["client", "--target", server.target, "--api-key", API_KEY]
    out = tmp_path / "clip.mp4"
    assert (
        vpt_main([*common, "generate", "--prompt", "red circle", "--seed", "4", "--out", str(out)])
        == 0
    )
    generated = json.loads(capsys.readouterr().out)
    assert generated["seed"] == 4 and out.is_file() and generated["frames"] == 4
    assert vpt_main([*common, "feedback", generated["generation_id"], "--thumbs", "up"]) == 0
    assert json.loads(capsys.readouterr().out)["duplicate"] is False
    assert vpt_main([*common, "status", generated["generation_id"]]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["status"] == "GENERATION_STATUS_COMPLETED"
    assert status["artifactSha256"] == generated["artifact_sha256"]
    with pytest.raises(SystemExit):
        vpt_main([*common, "status", "does-not-exist"])
    assert "NOT_FOUND" in capsys.readouterr().err


class SlowEnhancer:
    async def enhance(self, prompt: str, temperature: float | None = None) -> str:
        await asyncio.sleep(5)
        return prompt + " slowly"


class BrokenEnhancer:
    async def enhance(self, prompt: str, temperature: float | None = None) -> str:
        raise RuntimeError("enhancer down")


class RewritingEnhancer:
    async def enhance(self, prompt: str, temperature: float | None = None) -> str:
        return f"a {prompt} on a black background"


def test_enhancement_hook_falls_back_to_the_user_prompt() -> None:
    async def run(enhancer: object, requested: bool = True) -> tuple[str, str]:
        hook = EnhancementHook(enhancer, timeout_seconds=0.1)  # type: ignore[arg-type]
        result = await hook.enhance("red circle", requested)
        return result.prompt, result.result

    assert asyncio.run(run(SlowEnhancer())) == ("red circle", "timeout")
    assert asyncio.run(run(BrokenEnhancer())) == ("red circle", "error")
    assert asyncio.run(run(IdentityEnhancer())) == ("red circle", "unchanged")
    assert asyncio.run(run(RewritingEnhancer(), False)) == ("red circle", "disabled")
    assert asyncio.run(run(RewritingEnhancer())) == (
        "a red circle on a black background",
        "enhanced",
    )


class FlakyEnhancer:
    """Drops the user's colour when decoding greedily; keeps it when sampling."""

    def __init__(self, delay: float = 0.0) -> None:
        self.temperatures: list[float | None] = []
        self.delay = delay

    async def enhance(self, prompt: str, temperature: float | None = None) -> str:
        self.temperatures.append(temperature)
        if temperature is None:
            return "a large square moving left over a black background"
        await asyncio.sleep(self.delay)
        return f"a large {prompt} moving left over a black background"


def test_enhancement_hook_resamples_a_rejected_rewrite() -> None:
    async def run(hook: EnhancementHook) -> tuple[str, str, int]:
        result = await hook.enhance("red square", True)
        return result.prompt, result.result, result.attempts

    flaky = FlakyEnhancer()
    assert EnhancementHook(flaky, 1.0).resample_attempts == 3  # the service config's default
    hook = EnhancementHook(flaky, 1.0, resample_attempts=2, resample_temperature=0.9)
    assert asyncio.run(run(hook)) == (
        "a large red square moving left over a black background",
        "enhanced",
        2,
    )
    assert flaky.temperatures == [None, 0.9]
    flaky = FlakyEnhancer()
    assert asyncio.run(run(EnhancementHook(flaky, 1.0, resample_attempts=0))) == (
        "red square",
        "rejected",
        1,
    )
    assert flaky.temperatures == [None]
    # a resample that outlives the budget leaves the rejection standing
    slow = FlakyEnhancer(delay=5.0)
    assert asyncio.run(run(EnhancementHook(slow, 0.2, resample_attempts=3))) == (
        "red square",
        "rejected",
        1,
    )
    with pytest.raises(ValueError, match="resample_attempts"):
        EnhancementHook(flaky, 1.0, resample_attempts=-1)
    with pytest.raises(ValueError, match="resample_temperature"):
        EnhancementHook(flaky, 1.0, resample_attempts=1, resample_temperature=0.0)


def test_generated_code_is_built_from_the_protos() -> None:
    assert is_up_to_date()
    assert (GENERATED / ".stamp").read_text() == source_stamp()
    checked = subprocess.run(
        [sys.executable, "-m", "serving.build_protos"],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert "generated code for 4 proto files" in checked.stdout
    from serving.protos import pb

    assert pb.DESCRIPTOR.package == "vpt.serving.v1"


def test_protos_pass_buf_lint() -> None:
    buf = Path(sys.executable).parent / "buf"
    protos = Path(__file__).resolve().parents[2] / "protos"
    linted = subprocess.run([str(buf), "lint"], cwd=protos, capture_output=True, text=True)
    assert linted.returncode == 0, linted.stdout + linted.stderr


def test_artifact_store_on_fsspec_memory_and_refuses_path_tricks() -> None:
    import hashlib

    import numpy as np

    from serving.artifacts import ArtifactStore

    store = ArtifactStore("memory://vpt-test-artifacts")
    frames = np.random.default_rng(0).integers(0, 255, (4, 16, 16, 3), dtype=np.uint8)
    stored = store.put("abc-123", frames, fps=8)
    assert stored.uri == "memory://vpt-test-artifacts/abc-123.mp4"
    data = store.read("abc-123")
    assert hashlib.sha256(data).hexdigest() == stored.sha256 and data[4:8] == b"ftyp"
    assert store.fs.ls(store.base_path, detail=False) == [f"{store.base_path}/abc-123.mp4"]
    for bad in ("../escape", "a/b", "", "x" * 65):
        with pytest.raises(ValueError, match="generation id"):
            store.put(bad, frames, fps=8)


def test_the_documented_config_is_valid(tmp_path: Path) -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "serving.md").read_text()
    section = docs[docs.index("## Configuration") :]
    start = section.index("```yaml\n") + len("```yaml\n")
    block = section[start : section.index("\n```", start)]
    config_file = tmp_path / "serving.yaml"
    config_file.write_text(block)
    config = load_serve_config(config_file)
    assert config.server.port == 50051 and config.events.backend == "sqlite"
    assert config.model.path == str(SHIPPED_MODEL)
    assert config.admission.max_queue == 8 and config.enhancement.timeout_seconds == 2.0

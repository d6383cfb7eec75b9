"""The public service in-process (tiny model): streaming, known answers, bad input, cancellation,
feedback idempotency, events and metrics."""

from __future__ import annotations

import hashlib
import threading
import time
import urllib.request
from pathlib import Path

import grpc
import numpy as np
import pytest

from serving.client import (
    AsyncVideoClient,
    AuthenticationError,
    ConflictError,
    GenerationCancelledError,
    InvalidRequestError,
    NotFoundError,
    OverloadedError,
    PairwiseFeedback,
    VideoClient,
)
from serving.protos import events_pb, pb, pb_grpc, types_pb
from tests.serving.conftest import API_KEY, BackgroundServer
from vpt.checkpoint import load_generator
from vpt.streaming import BidirectionalStreamer, GenerationCancelled, StreamRequest
from vpt.video_io import read_video

METADATA = (("authorization", f"Bearer {API_KEY}"),)


def client(server: BackgroundServer, **kwargs: object) -> VideoClient:
    return VideoClient(server.target, api_key=API_KEY, **kwargs)  # type: ignore[arg-type]


def wait_idle(server: BackgroundServer, timeout: float = 10.0) -> float:
    started = time.monotonic()
    while not server.app.runner.admission.is_idle:
        assert time.monotonic() - started < timeout, "worker slot was not freed"
        time.sleep(0.01)
    return time.monotonic() - started


def read_events(server: BackgroundServer, topic: str) -> list[events_pb.Event]:
    consumer = server.app.bus.consumer(f"reader-{time.monotonic_ns()}", [topic])
    records = consumer.poll(0.2, max_records=10_000)
    consumer.close()
    return [events_pb.Event.FromString(r.value) for r in records]


def test_stream_matches_in_process_generator_and_is_stored(
    server: BackgroundServer, tiny_checkpoints: dict[str, Path]
) -> None:
    chunks: list[pb.VideoChunk] = []
    with client(server) as api:
        result = api.generate(
            "red circle moving left", seed=7, frames_per_chunk=1, on_chunk=chunks.append
        )
    generator = load_generator(tiny_checkpoints["tiny-a"]).generator
    expected = generator.generate(["red circle moving left"], [7])[0]
    np.testing.assert_array_equal(result.frames, expected)
    assert [c.first_frame_index for c in chunks] == list(range(expected.shape[0]))
    assert result.seed == 7 and result.model_version == "tiny-a"
    assert result.started.effective_params.num_steps == generator.config.sampler.num_steps
    stored = Path(result.completed.artifact_uri)
    assert stored.is_file()
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == result.completed.artifact_sha256
    assert read_video(stored).shape[0] == expected.shape[0]
    with client(server) as api:
        status = api.get_generation(result.generation_id)
    assert status.status == types_pb.GENERATION_STATUS_COMPLETED
    assert status.artifact_sha256 == result.completed.artifact_sha256
    assert status.effective_params == result.started.effective_params
    assert status.model == result.started.model and status.prompt == "red circle moving left"
    events = read_events(server, server.app.topics.generations)
    mine = [e for e in events if e.generation_completed.generation_id == result.generation_id]
    assert len(mine) == 1
    assert mine[0].generation_completed.artifact_sha256 == result.completed.artifact_sha256
    assert mine[0].generation_completed.model.version == "tiny-a"


def test_mp4_segments_and_async_client(server: BackgroundServer, tmp_path: Path) -> None:
    import asyncio

    async def run() -> object:
        async with AsyncVideoClient(server.target, api_key=API_KEY) as api:
            return await api.generate("blue square", seed=1, output_format="mp4")

    result = asyncio.run(run())
    out = result.write_mp4(tmp_path / "video.mp4")  # type: ignore[attr-defined]
    assert read_video(out).shape[0] == 4
    assert out.read_bytes()[4:8] == b"ftyp"


def test_bidirectional_streamer_stops_between_steps(tiny_checkpoints: dict[str, Path]) -> None:
    generator = load_generator(tiny_checkpoints["tiny-a"]).generator
    streamer = BidirectionalStreamer(generator)
    checks = 0

    def should_stop() -> bool:
        nonlocal checks
        checks += 1
        return checks > 3  # before sampling, then after steps 1 and 2

    request = StreamRequest("red circle", 0, generator.config.sampler.__class__(num_steps=50))
    with pytest.raises(GenerationCancelled):
        list(streamer.stream(request, should_stop))
    assert checks == 4


@pytest.mark.parametrize(
    ("request_message", "field"),
    [
        (pb.GenerateVideoRequest(prompt=""), "prompt"),
        (pb.GenerateVideoRequest(prompt="   "), "prompt"),
        (pb.GenerateVideoRequest(prompt="x" * (1 << 20)), "prompt"),
        (pb.GenerateVideoRequest(prompt="red flurble", strict=True), "prompt"),
        (
            pb.GenerateVideoRequest(
                prompt="red", params=types_pb.GenerationParams(num_frames=4097)
            ),
            "params.num_frames",
        ),
        (
            pb.GenerateVideoRequest(
                prompt="red", params=types_pb.GenerationParams(height=2**32 - 1)
            ),
            "params.height",
        ),
        (
            pb.GenerateVideoRequest(
                prompt="red", params=types_pb.GenerationParams(num_steps=10**6)
            ),
            "params.num_steps",
        ),
        (
            pb.GenerateVideoRequest(
                prompt="red", params=types_pb.GenerationParams(guidance_scale=float("nan"))
            ),
            "params.guidance_scale",
        ),
        (
            pb.GenerateVideoRequest(prompt="red", params=types_pb.GenerationParams(seed=2**64 - 1)),
            "params.seed",
        ),
        (pb.GenerateVideoRequest(prompt="red", output_format=99), "output_format"),  # type: ignore[arg-type]
    ],
)
def test_bad_requests_get_invalid_argument_naming_the_field(
    server: BackgroundServer, request_message: pb.GenerateVideoRequest, field: str
) -> None:
    with grpc.insecure_channel(
        server.target, options=[("grpc.max_send_message_length", 8 << 20)]
    ) as channel:
        stub = pb_grpc.GenerationServiceStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            list(stub.GenerateVideo(request_message, metadata=METADATA, timeout=30))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details().startswith(f"{field}:")


def test_wrong_or_missing_key_is_unauthenticated_but_health_is_open(
    server: BackgroundServer,
) -> None:
    for key in (None, "wrong-key"):
        with VideoClient(server.target, api_key=key) as api, pytest.raises(AuthenticationError):
            api.generate("red circle")
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(server.target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        response = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
    assert response.status == health_pb2.HealthCheckResponse.SERVING


def test_cancel_mid_stream_frees_the_slot_and_records_cancelled(server: BackgroundServer) -> None:
    with grpc.insecure_channel(server.target) as channel:
        stub = pb_grpc.GenerationServiceStub(channel)
        request = pb.GenerateVideoRequest(
            prompt="red circle", params=types_pb.GenerationParams(num_steps=1000)
        )
        call = stub.GenerateVideo(request, metadata=METADATA, timeout=60)
        started = next(call).started
        time.sleep(0.3)  # let it denoise a few steps
        call.cancel()
    assert wait_idle(server) < 2.0
    with client(server) as api:
        deadline = time.monotonic() + 10
        while (
            api.get_generation(started.generation_id).status != types_pb.GENERATION_STATUS_CANCELLED
        ):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        # the server stays healthy: the next request succeeds
        assert api.generate("green triangle", seed=2).completed.total_frames == 4


def test_deadline_and_cancel_generation_rpc(server: BackgroundServer) -> None:
    with client(server) as api:
        slow = {"steps": 1000}
        began = time.monotonic()
        with pytest.raises(Exception) as caught:
            api.generate("red circle", timeout=0.5, **slow)
        assert type(caught.value).__name__ == "DeadlineExceededError"
        assert time.monotonic() - began < 5
        wait_idle(server)

        ids: list[str] = []
        failures: list[BaseException] = []

        def generate_slowly() -> None:
            try:
                for message in api.stream("red circle", **slow):
                    if message.WhichOneof("event") == "started":
                        ids.append(message.started.generation_id)
            except BaseException as error:  # collected for the assertion below
                failures.append(error)

        worker = threading.Thread(target=generate_slowly)
        worker.start()
        while not ids:
            time.sleep(0.01)
        assert api.cancel(ids[0]).is_cancelled
        worker.join(timeout=10)
        assert isinstance(failures[0], GenerationCancelledError)
        wait_idle(server)
        assert api.cancel(ids[0]).is_cancelled is False
        with pytest.raises(NotFoundError):
            api.cancel("no-such-generation")


def test_full_queue_is_resource_exhausted_and_slow_reader_does_not_block(
    server: BackgroundServer,
) -> None:
    channel = grpc.insecure_channel(server.target)
    stub = pb_grpc.GenerationServiceStub(channel)
    slow = pb.GenerateVideoRequest(prompt="red", params=types_pb.GenerationParams(num_steps=1000))
    calls = [stub.GenerateVideo(slow, metadata=METADATA, timeout=60) for _ in range(3)]
    for call in calls:  # max_concurrent 1 + max_queue 2: all admitted; nobody reads further
        assert next(call).WhichOneof("event") == "started"
    with client(server, retries=0) as api, pytest.raises(OverloadedError, match="queue is full"):
        api.generate("red circle")
    for call in calls:
        call.cancel()
    channel.close()
    wait_idle(server)
    with client(server) as api:
        assert api.generate("red circle", seed=5).completed.total_frames == 4


def test_feedback_is_idempotent_validated_and_published(server: BackgroundServer) -> None:
    with client(server) as api:
        first = api.generate("red circle", seed=1)
        second = api.generate("red circle", seed=2)
        response = api.submit_feedback(first.generation_id, feedback_id="fb-1", rating=4)
        again = api.submit_feedback(first.generation_id, feedback_id="fb-1", rating=4)
        assert not response.is_duplicate and again.is_duplicate
        assert again.event_id == response.event_id
        with pytest.raises(ConflictError):
            api.submit_feedback(first.generation_id, feedback_id="fb-1", rating=1)
        with pytest.raises(InvalidRequestError, match=r"feedback\.rating\.stars"):
            api.submit_feedback(first.generation_id, rating=9)
        with pytest.raises(NotFoundError, match=r"feedback\.generation_id"):
            api.submit_feedback("missing-generation", rating=3)
        pairwise = PairwiseFeedback(second.generation_id, {"motion": "good", "visual": "same"})
        api.submit_feedback(first.generation_id, feedback_id="fb-2", pairwise=pairwise)
    events = read_events(server, server.app.topics.feedback)
    by_id = {e.feedback_submitted.feedback.feedback_id: e for e in events}
    assert sum(1 for e in events if e.feedback_submitted.feedback.feedback_id == "fb-1") == 1
    assert by_id["fb-1"].feedback_submitted.feedback.rating.stars == 4
    assert by_id["fb-1"].feedback_submitted.model.version == "tiny-a"
    preferences = by_id["fb-2"].feedback_submitted.feedback.pairwise.preferences
    assert {(p.dimension, p.preference) for p in preferences} == {
        (types_pb.DIMENSION_MOTION, types_pb.PREFERENCE_GOOD),
        (types_pb.DIMENSION_VISUAL, types_pb.PREFERENCE_SAME),
    }


def test_metrics_endpoint_reports_generations(server: BackgroundServer) -> None:
    with client(server) as api:
        api.generate("red circle", seed=3)
        with pytest.raises(InvalidRequestError):
            api.generate("")
    url = f"http://127.0.0.1:{server.app.metrics_port}/metrics"
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    assert 'vpt_generations_total{outcome="ok"}' in text
    assert "vpt_model_info{digest=" in text and 'version="tiny-a"' in text
    assert "vpt_time_to_first_chunk_seconds_bucket" in text
    assert 'vpt_rejections_total{reason="invalid_argument"}' in text
    assert 'vpt_events_produced_total{result="ok",topic="vpt.generations.v1"}' in text


def test_malformed_bytes_are_refused_and_the_server_stays_healthy(
    server: BackgroundServer,
) -> None:
    garbage = [b"\xff\xff\xff\xff", b"\x0a\x03\xff\xfe\xfd", b"\x12\x80"]  # bad tag/UTF-8/length
    with grpc.insecure_channel(server.target) as channel:
        call = channel.unary_stream("/vpt.serving.v1.GenerationService/GenerateVideo")
        for payload in garbage:
            with pytest.raises(grpc.RpcError) as caught:
                list(call(payload, metadata=METADATA, timeout=10))
            # grpc itself answers a request it cannot parse (UNKNOWN in grpc.aio)
            assert caught.value.code() in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL)
            assert "error parsing message" in (caught.value.details() or "").lower()
    with client(server) as api:
        assert api.generate("red circle", seed=4).completed.total_frames == 4


def test_after_all_the_bad_input_stored_records_are_intact(server: BackgroundServer) -> None:
    """Runs last in this module: every stored artifact matches its sha256 in the record and in
    the generations topic, and every record of the log parses."""
    events = read_events(server, server.app.topics.generations)
    completed = [
        e.generation_completed
        for e in events
        if e.generation_completed.status == types_pb.GENERATION_STATUS_COMPLETED
    ]
    assert len(completed) >= 5
    assert len({e.event_id for e in events}) == len(events)
    for payload in completed:
        data = Path(payload.artifact_uri).read_bytes()
        assert hashlib.sha256(data).hexdigest() == payload.artifact_sha256
        record = server.app.store.get(payload.generation_id)
        assert record is not None and record.status == "completed"
        assert record.artifact_sha256 == payload.artifact_sha256
    statuses = {e.generation_completed.status for e in events}
    assert types_pb.GENERATION_STATUS_CANCELLED in statuses
    with client(server) as api:
        assert api.generate("red circle", seed=9).completed.total_frames == 4

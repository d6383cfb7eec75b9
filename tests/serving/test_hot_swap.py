"""Weight hot-swap under load: concurrent streams while a new version is staged and activated
and a tampered one is refused; no request fails and every generation has one version."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import grpc
import numpy as np
import pytest

from serving.client import VideoClient
from serving.protos import admin_pb, admin_pb_grpc, events_pb
from tests.serving.conftest import API_KEY, start_server
from vpt.checkpoint import load_generator


@pytest.mark.slow
def test_hot_swap_under_load(tmp_path: Path, tiny_checkpoints: dict[str, Path]) -> None:
    server = start_server(tmp_path, tiny_checkpoints["tiny-a"], max_concurrent=2, max_queue=16)
    results: list[tuple[str, int, np.ndarray]] = []
    failures: list[BaseException] = []
    stop = threading.Event()

    def stream_forever(worker: int) -> None:
        with VideoClient(server.target, api_key=API_KEY) as api:
            seed = worker * 1000
            while not stop.is_set():
                try:
                    result = api.generate("red circle moving left", seed=seed, frames_per_chunk=1)
                    results.append((result.model_version, seed, result.frames))
                except BaseException as error:  # any failure fails the test
                    failures.append(error)
                seed += 1

    clients = [threading.Thread(target=stream_forever, args=(i,)) for i in range(3)]
    for thread in clients:
        thread.start()
    try:
        with grpc.insecure_channel(server.admin_target) as channel:
            admin = admin_pb_grpc.ModelAdminServiceStub(channel)
            time.sleep(0.5)
            with pytest.raises(grpc.RpcError) as refused:
                admin.StageModel(
                    admin_pb.StageModelRequest(path=str(tiny_checkpoints["tiny-tampered"])),
                    timeout=60,
                )
            assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert "sha256" in refused.value.details()
            staged = admin.StageModel(
                admin_pb.StageModelRequest(path=str(tiny_checkpoints["tiny-b"])), timeout=60
            )
            assert staged.version.model.version == "tiny-b" and not staged.version.is_active
            with pytest.raises(grpc.RpcError) as stale:
                admin.ActivateModel(
                    admin_pb.ActivateModelRequest(version="tiny-b", expected_current_version="x"),
                    timeout=10,
                )
            assert stale.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            activated = admin.ActivateModel(
                admin_pb.ActivateModelRequest(version="tiny-b", expected_current_version="tiny-a"),
                timeout=10,
            )
            assert activated.active.model.version == "tiny-b"
            assert activated.previous.model.version == "tiny-a"
            time.sleep(1.0)
            rolled = admin.RollbackModel(admin_pb.RollbackModelRequest(), timeout=10)
            assert rolled.active.model.version == "tiny-a"
            time.sleep(0.5)
            admin.ActivateModel(admin_pb.ActivateModelRequest(version="tiny-b"), timeout=10)
            time.sleep(0.5)
            versions = admin.ListModelVersions(admin_pb.ListModelVersionsRequest(), timeout=10)
            assert {v.model.version for v in versions.versions} == {"tiny-a", "tiny-b"}
        consumer = server.app.bus.consumer("swap-audit", [server.app.topics.model_versions])
        announced = [events_pb.Event.FromString(r.value) for r in consumer.poll(0.5)]
        consumer.close()
        assert [
            (e.model_version_activated.model.version, e.model_version_activated.is_rollback)
            for e in announced
        ] == [("tiny-b", False), ("tiny-a", True), ("tiny-b", False)]
    finally:
        stop.set()
        for thread in clients:
            thread.join(timeout=60)
        server.stop()

    assert failures == []
    served = {version for version, _, _ in results}
    assert served == {"tiny-a", "tiny-b"}
    # Every video equals what its reported version generates in-process: no mixed weights.
    generators = {v: load_generator(tiny_checkpoints[v]).generator for v in ("tiny-a", "tiny-b")}
    for version, seed, frames in results[:: max(1, len(results) // 12)]:
        expected = generators[version].generate(["red circle moving left"], [seed])[0]
        np.testing.assert_array_equal(frames, expected)

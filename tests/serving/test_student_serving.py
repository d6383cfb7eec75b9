"""A distilled causal student (manifest stage `distill`) served by the same service: chunks
arrive one by one as the student yields them, equal to in-process sampling; guidance and too
many steps are refused up front; and a bidirectional model hot-swaps to the student."""

from __future__ import annotations

from pathlib import Path

import grpc
import numpy as np
import pytest

from serving.client import InvalidRequestError, VideoClient
from serving.protos import admin_pb, admin_pb_grpc, pb
from tests.serving.conftest import API_KEY, start_server
from tests.tiny_models import tiny_generator
from vpt.ar_generator import load_ar_generator
from vpt.checkpoint import save_checkpoint


@pytest.fixture(scope="module")
def student_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("student") / "tiny-student"
    save_checkpoint(
        tiny_generator(seed=3),
        folder,
        version="tiny-student",
        stage="distill",
        recipe={"student": {"chunk_frames": 1, "num_steps": 2}},
    )
    return folder


def test_student_streams_chunk_by_chunk(tmp_path: Path, student_checkpoint: Path) -> None:
    server = start_server(tmp_path, student_checkpoint)
    try:
        chunks: list[pb.VideoChunk] = []
        with VideoClient(server.target, api_key=API_KEY) as api:
            result = api.generate("red circle moving left", seed=5, on_chunk=chunks.append)
            with pytest.raises(InvalidRequestError, match=r"^INVALID_ARGUMENT: params\.guidance"):
                api.generate("red circle", guidance=3.0)
            with pytest.raises(InvalidRequestError, match=r"params\.num_steps: must be in 1\.\.50"):
                api.generate("red circle", steps=51)
        student = load_ar_generator(student_checkpoint)
        expected = student.generate(["red circle moving left"], [5])[0]
        np.testing.assert_array_equal(result.frames, expected)
        assert [c.first_frame_index for c in chunks] == [0, 2]  # two transformer-frame chunks
        assert result.started.effective_params.num_steps == 2
        assert result.started.effective_params.guidance_scale == 1.0
        assert result.model_version == "tiny-student"
    finally:
        server.stop()


def test_bidirectional_model_hot_swaps_to_the_student(
    tmp_path: Path, tiny_checkpoints: dict[str, Path], student_checkpoint: Path
) -> None:
    server = start_server(tmp_path, tiny_checkpoints["tiny-a"])
    try:
        with grpc.insecure_channel(server.admin_target) as channel:
            admin = admin_pb_grpc.ModelAdminServiceStub(channel)
            staged = admin.StageModel(admin_pb.StageModelRequest(path=str(student_checkpoint)))
            assert staged.version.stage == "distill"
            admin.ActivateModel(
                admin_pb.ActivateModelRequest(
                    version="tiny-student", expected_current_version="tiny-a"
                )
            )
        chunks: list[pb.VideoChunk] = []
        with VideoClient(server.target, api_key=API_KEY) as api:
            result = api.generate("blue square", seed=1, on_chunk=chunks.append)
        assert result.model_version == "tiny-student" and len(chunks) == 2
    finally:
        server.stop()

"""The Triton backend against a server speaking Triton's gRPC protocol (tritonclient's stubs),
backed by onnxruntime over the exported model repository: same scores as the in-process ONNX
backend, deadlines and bounded retries as configured, clear errors when the server is gone."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from online_rl.triton_dev_server import TritonDevServer
from online_rl.triton_reward import TritonReward, TritonRewardError, build_triton_reward_set
from tests.rewards.conftest import TINY_CONFIGS
from vpt.rewards import RewardInputError
from vpt.rewards.learned import OnnxReward, PromptEmbedder
from vpt.rewards.model_files import load_reward_model
from vpt.rewards.reward_set import RewardSetConfig, TritonEndpointConfig


def _endpoint(server: TritonDevServer, **overrides: float) -> TritonEndpointConfig:
    settings = {"timeout_s": 5.0, "max_retries": 2, "retry_backoff_s": 0.01, **overrides}
    return TritonEndpointConfig(url=server.url, **settings)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def server(triton_repository: Path) -> TritonDevServer:
    with TritonDevServer(triton_repository) as running:
        yield running  # type: ignore[misc]


@pytest.mark.parametrize("name", tuple(TINY_CONFIGS))
def test_triton_and_onnx_backends_agree(
    name: str,
    server: TritonDevServer,
    tiny_models_dir: Path,
    embedder: PromptEmbedder,
    world_batch: tuple[np.ndarray, list[str]],
) -> None:
    videos, prompts = world_batch
    local = OnnxReward.from_loaded(load_reward_model(tiny_models_dir / name), embedder)
    remote = TritonReward(name, _endpoint(server), embedder)
    remote_scores = remote.score(videos, prompts)
    assert remote_scores.dtype == np.float32 and remote_scores.shape == (len(prompts),)
    np.testing.assert_allclose(remote_scores, local.score(videos, prompts), atol=1e-5, rtol=0)
    remote.close()


def test_reward_set_on_triton_scores_every_reward(
    server: TritonDevServer, embedder: PromptEmbedder, world_batch: tuple[np.ndarray, list[str]]
) -> None:
    videos, prompts = world_batch
    config = RewardSetConfig(
        weights={"visual_quality": 1.0, "text_alignment": 2.0, "structural": 0.5},
        backend="triton",  # type: ignore[arg-type]
        triton=_endpoint(server),
    )
    rewards = build_triton_reward_set(config, embedder)
    scores = rewards.score(videos, prompts)
    assert sorted(scores) == ["structural", "text_alignment", "visual_quality"]
    advantages = rewards.combine(scores, np.array([0, 0, 0, 1, 1, 1]))
    np.testing.assert_allclose([advantages[:3].sum(), advantages[3:].sum()], 0.0, atol=1e-9)


def test_slow_server_times_out_after_the_configured_retries(triton_repository: Path) -> None:
    videos = np.zeros((2, 16, 32, 32, 3), dtype=np.uint8)
    with TritonDevServer(triton_repository, delay_s=2.0) as slow:
        reward = TritonReward("visual_quality", _endpoint(slow, timeout_s=0.3, max_retries=2))
        started = time.monotonic()
        with pytest.raises(TritonRewardError, match=r"in 3 attempt\(s\) of 0\.3 s.*DEADLINE"):
            reward.score(videos, ["a", "b"])
        elapsed = time.monotonic() - started
        assert slow.infer_calls == 3
        assert 0.9 <= elapsed < 3.0  # three 0.3 s deadlines + back-off, never the 2 s holds


def test_transient_failures_are_retried_until_success(triton_repository: Path) -> None:
    videos = np.zeros((2, 16, 32, 32, 3), dtype=np.uint8)
    with TritonDevServer(triton_repository, fail_first=2) as flaky:
        reward = TritonReward("visual_quality", _endpoint(flaky, max_retries=2))
        assert reward.score(videos, ["a", "b"]).shape == (2,)
        assert flaky.infer_calls == 3
    with TritonDevServer(triton_repository, fail_first=2) as flaky:
        reward = TritonReward("visual_quality", _endpoint(flaky, max_retries=1))
        with pytest.raises(TritonRewardError, match=r"2 attempt\(s\).*UNAVAILABLE"):
            reward.score(videos, ["a", "b"])
        assert flaky.infer_calls == 2


def test_gone_server_fails_with_a_clear_error(triton_repository: Path) -> None:
    server = TritonDevServer(triton_repository).start()
    reward = TritonReward("motion_quality", _endpoint(server, timeout_s=1.0, max_retries=1))
    url = server.url
    server.stop()
    videos = np.zeros((1, 16, 32, 32, 3), dtype=np.uint8)
    with pytest.raises(TritonRewardError, match=rf"{url} did not score.*check that the server"):
        reward.score(videos, ["a"])
    with pytest.raises(TritonRewardError, match="did not read the model metadata"):
        TritonReward("motion_quality", TritonEndpointConfig(url=url, timeout_s=1.0, max_retries=0))


def test_unknown_model_is_not_retried(server: TritonDevServer) -> None:
    with pytest.raises(TritonRewardError, match=r"refused.*NOT_FOUND.*no model 'nope'"):
        TritonReward("nope", _endpoint(server))


def test_input_contract_is_checked_before_calling_the_server(server: TritonDevServer) -> None:
    reward = TritonReward("visual_quality", _endpoint(server))
    calls = server.infer_calls
    with pytest.raises(RewardInputError, match="16 frames of 32x32"):
        reward.score(np.zeros((1, 16, 64, 64, 3), dtype=np.uint8), ["a"])
    assert server.infer_calls == calls


def test_dev_server_rejects_malformed_requests(server: TritonDevServer) -> None:
    client = grpcclient.InferenceServerClient(server.url)
    assert client.is_server_live() and client.is_model_ready("text_alignment")
    video = grpcclient.InferInput("video", [1, 16, 32, 32, 3], "FP32")
    video.set_data_from_numpy(np.zeros((1, 16, 32, 32, 3), dtype=np.float32))
    with pytest.raises(InferenceServerException, match="must be UINT8"):
        client.infer("visual_quality", [video])
    config = client.get_model_config("text_alignment").config
    assert config.max_batch_size == 64 and [i.name for i in config.input] == [
        "video",
        "text_tokens",
        "text_mask",
    ]
    assert [list(i.dims) for i in config.input[1:]] == [[32, 384], [32]]
    video = grpcclient.InferInput("video", [1, 16, 32, 32, 3], "UINT8")
    video.set_data_from_numpy(np.zeros((1, 16, 32, 32, 3), dtype=np.uint8))
    short = grpcclient.InferInput("text_tokens", [1, 16, 384], "FP32")
    short.set_data_from_numpy(np.zeros((1, 16, 384), dtype=np.float32))
    mask = grpcclient.InferInput("text_mask", [1, 16], "FP32")
    mask.set_data_from_numpy(np.ones((1, 16), dtype=np.float32))
    with pytest.raises(InferenceServerException, match=r"'text_\w+' must be FP32.*\[32"):
        client.infer("text_alignment", [video, short, mask])
    with pytest.raises(InferenceServerException, match=r"takes inputs.*text_mask"):
        client.infer("text_alignment", [video])
    client.close()

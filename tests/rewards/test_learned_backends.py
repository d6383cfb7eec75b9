"""The learned rewards' in-process backends: ONNX export matches torch; the input contract."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from tests.rewards.conftest import TINY_CONFIGS
from vpt.checkpoint import CheckpointError
from vpt.rewards import Reward, RewardInputError
from vpt.rewards.learned import SCORE_BATCH, OnnxReward, PromptEmbedder, TorchReward
from vpt.rewards.model_files import load_reward_model
from vpt.rewards.onnx_export import write_triton_repository
from vpt.world import ShapesWorld, WorldConfig

NAMES = tuple(TINY_CONFIGS)


def _backends(folder: Path, embedder: PromptEmbedder) -> tuple[TorchReward, OnnxReward]:
    loaded = load_reward_model(folder)
    return TorchReward(loaded, embedder), OnnxReward.from_loaded(loaded, embedder)


@pytest.mark.parametrize("name", NAMES)
def test_onnx_and_torch_agree(
    name: str,
    tiny_models_dir: Path,
    embedder: PromptEmbedder,
    world_batch: tuple[np.ndarray, list[str]],
) -> None:
    videos, prompts = world_batch
    torch_reward, onnx_reward = _backends(tiny_models_dir / name, embedder)
    assert isinstance(onnx_reward, Reward) and onnx_reward.name == name
    torch_scores = torch_reward.score(videos, prompts)
    onnx_scores = onnx_reward.score(videos, prompts)
    assert onnx_scores.dtype == np.float32 and onnx_scores.shape == (len(prompts),)
    np.testing.assert_allclose(onnx_scores, torch_scores, atol=1e-5, rtol=0)
    assert np.ptp(torch_scores) > 1e-6  # the comparison is not between constants


def test_large_batches_are_scored_in_chunks_with_the_same_result(
    tiny_models_dir: Path, embedder: PromptEmbedder
) -> None:
    clips = ShapesWorld(WorldConfig(), seed=3).batch(range(SCORE_BATCH + 6))
    _, onnx_reward = _backends(tiny_models_dir / "text_alignment", embedder)
    prompts = list(clips.captions)
    whole = onnx_reward.score(clips.frames, prompts)
    one_by_one = [onnx_reward.score(clips.frames[i : i + 1], prompts[i : i + 1]) for i in (0, 69)]
    np.testing.assert_allclose([s[0] for s in one_by_one], whole[[0, 69]], atol=1e-6)


def test_text_alignment_depends_on_the_prompt(
    tiny_models_dir: Path, embedder: PromptEmbedder, world_batch: tuple[np.ndarray, list[str]]
) -> None:
    videos, _ = world_batch
    _, reward = _backends(tiny_models_dir / "text_alignment", embedder)
    same_video = np.repeat(videos[:1], 2, axis=0)
    scores = reward.score(same_video, ["a red circle moving left", "a blue square going up"])
    assert scores[0] != scores[1]


@pytest.mark.parametrize("name", NAMES)
def test_wrong_geometry_is_refused_with_what_was_expected(
    name: str, tiny_models_dir: Path, embedder: PromptEmbedder
) -> None:
    _, reward = _backends(tiny_models_dir / name, embedder)
    videos = np.zeros((1, 8, 32, 32, 3), dtype=np.uint8)
    with pytest.raises(RewardInputError, match=r"16 frames of 32x32 pixels.*got \(8, 32, 32\)"):
        reward.score(videos, ["a red circle"])


def test_bad_videos_and_prompts_are_refused(
    tiny_models_dir: Path, embedder: PromptEmbedder
) -> None:
    _, reward = _backends(tiny_models_dir / "visual_quality", embedder)
    with pytest.raises(RewardInputError, match="uint8"):
        reward.score(np.zeros((1, 16, 32, 32, 3), dtype=np.float32), ["x"])
    with pytest.raises(RewardInputError, match="1 videos but 2 prompts"):
        reward.score(np.zeros((1, 16, 32, 32, 3), dtype=np.uint8), ["x", "y"])
    assert reward.score(np.zeros((0, 16, 32, 32, 3), dtype=np.uint8), []).shape == (0,)


def test_a_modified_model_file_is_refused(tiny_models_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "visual_quality"
    shutil.copytree(tiny_models_dir / "visual_quality", copy)
    graph = copy / "model.onnx"
    data = bytearray(graph.read_bytes())
    data[-1] ^= 0xFF
    graph.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"model\.onnx does not match its sha256"):
        load_reward_model(copy)


def test_triton_repository_layout_and_config_parse(tiny_models_dir: Path, tmp_path: Path) -> None:
    written = write_triton_repository(tiny_models_dir, tmp_path)
    assert sorted(p.name for p in written) == sorted(NAMES)
    for name in NAMES:
        assert (tmp_path / name / "1" / "model.onnx").read_bytes() == (
            tiny_models_dir / name / "model.onnx"
        ).read_bytes()
        config = text_format.Parse(
            (tmp_path / name / "config.pbtxt").read_text(), model_config_pb2.ModelConfig()
        )
        assert config.name == name and config.platform == "onnxruntime_onnx"
        assert config.input[0].name == "video"
        assert list(config.input[0].dims) == [16, 32, 32, 3]
        text_inputs = ["text_tokens", "text_mask"] if name == "text_alignment" else []
        assert [i.name for i in config.input[1:]] == text_inputs
    with pytest.raises(ValueError, match="no exported reward model named nope"):
        write_triton_repository(tiny_models_dir, tmp_path, ("nope",))

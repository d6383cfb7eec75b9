"""Reward training data (labels, held-out split) and `vpt train rewards` / `vpt export rewards`."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from vpt.cli.main import main
from vpt.rewards.model_files import load_reward_model
from vpt.training.reward_data import (
    RewardDataConfig,
    draw_caption_pair,
    draw_clip,
)
from vpt.training.reward_quality import auroc, spearman
from vpt.world.splits import is_held_out
from vpt.world.vocabulary import BACKGROUND_RGB

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "shapes_rewards.yaml"
NAMES = ("visual_quality", "motion_quality", "text_alignment")
TINY = [
    "encoder.channels=[4, 8, 8]",
    "encoder.keypoints=1",
    "encoder.temporal_width=8",
    "encoder.output_dim=16",
    "embed_dim=8",
    "text_queries=2",
    "text_heads=2",
    "text_width=8",
    "data.text_pool=8",
    "eval_clips=12",
] + [
    setting
    for name in NAMES
    for setting in (
        f"{name}.batch_size=4",
        f"{name}.loop.steps=3",
        f"{name}.loop.save_every=1",
        f"{name}.optim.warmup_steps=1",
    )
]


def _train(out: Path, *extra: str) -> int:
    settings = [arg for setting in [*TINY, *extra] for arg in ("--set", setting)]
    return main(["train", "rewards", "--recipe", str(RECIPE), "--out", str(out), *settings])


def test_clips_are_pure_functions_of_their_index_and_respect_the_split() -> None:
    data = RewardDataConfig()
    first, again = draw_clip(data, 1, 5, False), draw_clip(data, 1, 5, False)
    np.testing.assert_array_equal(first.frames, again.frames)
    assert first.defects == again.defects
    assert not any(is_held_out(draw_clip(data, 1, i, False).attributes) for i in range(40))
    assert all(is_held_out(draw_clip(data, 101, i, True).attributes) for i in range(40))
    pair = draw_caption_pair(data, 4, 3, False)
    assert pair.positive_stated.agrees_with(pair.attributes)
    assert not pair.negative_stated.agrees_with(pair.attributes)


def test_missing_frame_labels_count_the_frames_without_the_object() -> None:
    data = replace(RewardDataConfig(), defect_fraction=0.0, missing_fraction=1.0)
    for index in range(10):
        clip = draw_clip(data, 1, index, False)
        background = np.array(BACKGROUND_RGB[clip.attributes.background], dtype=np.uint8)
        empty = (clip.frames == background).all(axis=(1, 2, 3))
        assert empty.mean() == pytest.approx(clip.missing)
        assert 1 <= round(clip.missing * 16) <= data.max_missing_frames


def test_rank_metrics_known_answers() -> None:
    assert auroc(np.array([3.0, 4.0]), np.array([1.0, 2.0])) == 1.0
    assert auroc(np.array([1.0, 2.0]), np.array([1.0, 2.0])) == 0.5
    assert spearman(np.array([1.0, 2.0, 3.0]), np.array([-5.0, -1.0, 7.0])) == pytest.approx(1.0)


@pytest.mark.slow
def test_train_rewards_writes_verified_models_and_resumes_exactly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    assert _train(whole) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["finished"] is True and report["models"] == str(whole / "models")
    assert _train(resumed, "motion_quality.loop.stop_after=2") == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["finished"] is False
    assert _train(resumed) == 0
    for name in NAMES:
        loaded = load_reward_model(whole / "models" / name)
        assert loaded.manifest is not None and loaded.manifest.steps == 3
        assert {"cpu_seconds", "final_loss"} <= set(loaded.manifest.metrics)
        assert (whole / "triton" / name / "1" / "model.onnx").is_file()
        assert (whole / "models" / name / "model.safetensors").read_bytes() == (
            resumed / "models" / name / "model.safetensors"
        ).read_bytes()
        lines = (whole / name / "metrics.jsonl").read_text().splitlines()
        assert [json.loads(line)["step"] for line in lines] == [3]
    text_manifest = load_reward_model(whole / "models" / "text_alignment").manifest
    assert text_manifest is not None and "auroc" in text_manifest.metrics

    with pytest.raises(SystemExit):
        main(["train", "rewards", "--recipe", str(RECIPE)])
    capsys.readouterr()
    assert _train(whole, "embed_dim=4") == 2
    assert "different recipe (changed: embed_dim)" in capsys.readouterr().err

    repository = tmp_path / "repo"
    export = ["export", "rewards", "--models", str(whole / "models"), "--out", str(repository)]
    assert main(export) == 0
    assert sorted(p.name for p in repository.iterdir()) == sorted(NAMES)
    assert main(["export", "rewards", "--models", str(tmp_path / "none"), "--out", "x"]) == 2
    assert "does not exist" in capsys.readouterr().err

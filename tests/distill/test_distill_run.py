"""`vpt train distill` end to end on a tiny teacher: both stages, checkpoint, exact resume."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.tiny_models import tiny_generator
from vpt.ar_generator import load_ar_generator
from vpt.checkpoint import CheckpointError, save_checkpoint
from vpt.cli.main import main
from vpt.config import config_from_dict
from vpt.training.distill import DistillConfig, run_distill, training_prompts
from vpt.world import parse_prompt


def tiny_recipe(teacher: Path) -> dict:
    return {
        "teacher": str(teacher),
        "student": {"chunk_frames": 1, "num_steps": 2, "shift": 3.0},
        "prompts": {"count": 16, "seed": 0},
        "ode": {
            "trajectories": 4,
            "teacher_steps": 4,
            "batch_size": 2,
            "loop": {"steps": 2, "log_every": 1, "save_every": 1},
        },
        "dmd": {
            "batch_size": 2,
            "generator_every": 2,
            "loop": {"steps": 4, "log_every": 1, "save_every": 2},
        },
        "eval_prompts": 2,
        "version": "tiny-student",
    }


@pytest.fixture(scope="module")
def teacher_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("teacher") / "ckpt"
    save_checkpoint(tiny_generator(), folder, version="tiny-teacher")
    return folder


def test_training_prompts_are_parseable_and_deterministic() -> None:
    config = DistillConfig().prompts
    prompts = training_prompts(config)
    assert len(prompts) == config.count and prompts == training_prompts(config)
    assert all(not parse_prompt(p).unknown_words for p in prompts[:200])


@pytest.mark.slow
def test_distill_runs_resumes_exactly_and_ships_a_loadable_student(
    teacher_checkpoint: Path, tmp_path: Path
) -> None:
    recipe = tiny_recipe(teacher_checkpoint)
    config = config_from_dict(DistillConfig, recipe)
    straight = run_distill(config, tmp_path / "straight")
    assert straight is not None

    # The same run killed twice (once in each stage) and resumed.
    interrupted = json.loads(json.dumps(recipe))
    interrupted["ode"]["loop"]["stop_after"] = 1
    assert run_distill(config_from_dict(DistillConfig, interrupted), tmp_path / "resumed") is None
    interrupted["ode"]["loop"]["stop_after"] = 0
    interrupted["dmd"]["loop"]["stop_after"] = 3
    assert run_distill(config_from_dict(DistillConfig, interrupted), tmp_path / "resumed") is None
    resumed = run_distill(config, tmp_path / "resumed")
    assert resumed is not None

    first = load_ar_generator(straight)
    second = load_ar_generator(resumed)
    for name, value in first.student.state_dict().items():
        assert torch.equal(value, second.student.state_dict()[name]), name

    manifest = json.loads((straight / "manifest.json").read_text())
    assert manifest["stage"] == "distill" and manifest["parent"] == "tiny-teacher"
    assert manifest["version"] == "tiny-student"
    assert manifest["recipe"]["student"]["num_steps"] == 2
    assert "eval_all_correct" in manifest["metrics"]
    resumed_metrics = json.loads((resumed / "manifest.json").read_text())["metrics"]
    assert resumed_metrics["ode_final_loss"] == manifest["metrics"]["ode_final_loss"] is not None
    assert resumed_metrics["dmd_final_critic_loss"] is not None
    lines = (tmp_path / "straight" / "dmd" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2, 3, 4]
    assert "dmd_direction_norm" in json.loads(lines[0])  # iteration 0 updates the student

    video = first.generate(["a red circle moving left"], [0])
    assert video.shape == (1, 4, 16, 16, 3) and video.dtype == np.uint8
    with pytest.raises(CheckpointError, match="not a distilled student"):
        load_ar_generator(teacher_checkpoint)

    out = tmp_path / "video.npy"
    command = ["generate", "--model", str(straight), "--prompt", "red circle", "--out", str(out)]
    assert main([*command, "--seed", "0"]) == 0
    assert np.array_equal(np.load(out), first.generate(["red circle"], [0])[0])
    assert main([*command, "--guidance", "4"]) == 2


def test_changed_recipe_refuses_to_resume(teacher_checkpoint: Path, tmp_path: Path) -> None:
    recipe = tiny_recipe(teacher_checkpoint)
    recipe["ode"]["loop"]["steps"] = 0
    recipe["dmd"]["loop"]["steps"] = 0
    recipe["eval_prompts"] = 0
    assert run_distill(config_from_dict(DistillConfig, recipe), tmp_path) is not None
    recipe["student"]["num_steps"] = 3
    with pytest.raises(ValueError, match="different recipe"):
        run_distill(config_from_dict(DistillConfig, recipe), tmp_path)


def test_cli_reports_a_bad_recipe_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("dmd: {generator_evry: 3}\n")
    status = main(["train", "distill", "--recipe", str(recipe), "--out", str(tmp_path / "out")])
    assert status == 2
    assert "generator_evry" in capsys.readouterr().err

"""Systems and their specs: world references are deterministic and show what the prompt asks;
checkpoints generate as their generator does; bad specs say what to give."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.tiny_models import TINY_GEOMETRY, tiny_generator
from vpt.ar_generator import ARGenerator
from vpt.checkpoint import save_checkpoint
from vpt.eval.reference_renders import complete_attributes, render_reference
from vpt.eval.systems import (
    CheckpointSystem,
    ReseededSystem,
    load_systems,
    parse_system_spec,
    world_system,
)
from vpt.world import Background, Color, PromptAttributes, WorldConfig, detect, parse_prompt
from vpt.world.dataset import render_clean
from vpt.world.vocabulary import AttributeName

PROMPTS = ["red circle moving left", "big square on navy", "fast triangle"]


def test_a_clean_reference_of_a_complete_prompt_is_render_clean() -> None:
    attributes = parse_prompt("small red circle moving left slowly on black").attributes
    config = WorldConfig()
    np.testing.assert_array_equal(
        render_reference(attributes, 9, config), render_clean(attributes.to_attributes(), 9, config)
    )


def test_open_attributes_are_completed_validly_and_cover_every_choice() -> None:
    rng = np.random.default_rng(0)
    white = PromptAttributes(color=Color.WHITE)
    completed = [complete_attributes(white, rng) for _ in range(200)]
    assert all(a.color is Color.WHITE for a in completed)
    assert {a.background for a in completed} == set(Background) - {Background.WHITE}
    for name in AttributeName:
        if name not in (AttributeName.COLOR, AttributeName.BACKGROUND):
            assert len({a.get(name) for a in completed}) > 1, name


@pytest.mark.parametrize("condition", ["clean", "defective", "raw"])
def test_world_systems_are_deterministic_and_show_the_prompt(condition: str) -> None:
    system = world_system(condition)  # type: ignore[arg-type]
    first = system.generate(PROMPTS, [0, 1, 2])
    np.testing.assert_array_equal(first, system.generate(PROMPTS, [0, 1, 2]))
    assert not np.array_equal(first, system.generate(PROMPTS, [5, 6, 7]))
    for video, prompt in zip(first, PROMPTS, strict=True):
        stated = parse_prompt(prompt).attributes
        detected = detect(video).attributes
        assert all(detected.get(n) == stated.get(n) for n in stated.mentioned), prompt


def test_defective_reference_is_the_clean_one_damaged() -> None:
    clean = world_system("clean").generate(PROMPTS, [4, 4, 4])
    defective = world_system("defective").generate(PROMPTS, [4, 4, 4])
    for good, bad in zip(clean, defective, strict=True):
        assert detect(good).attributes == detect(bad).attributes
        assert np.abs(good.astype(int) - bad.astype(int)).mean() > 5


def test_raw_world_damages_about_its_defect_fraction_of_renders() -> None:
    raw = world_system("raw")
    stated = [parse_prompt(p).attributes for p in PROMPTS]
    defects = [raw.defects_for(a, seed) for a in stated for seed in range(300)]
    assert defects == [raw.defects_for(a, seed) for a in stated for seed in range(300)]
    damaged = [d for d in defects if not d.is_clean]
    assert len(damaged) / len(defects) == pytest.approx(raw.config.defect_fraction, abs=0.04)
    assert all(1 <= len(d.kinds) <= 2 and d.caption_mismatch is None for d in damaged)


def test_reseeded_system_shifts_the_seeds() -> None:
    clean = world_system("clean")
    shifted = ReseededSystem(clean, offset=100)
    np.testing.assert_array_equal(
        shifted.generate(PROMPTS, [0, 1, 2]), clean.generate(PROMPTS, [100, 101, 102])
    )
    assert shifted.name == "world:clean+seed100"


def test_checkpoint_spec_loads_the_generator_and_sets_world_geometry(tmp_path: Path) -> None:
    folder = tmp_path / "ckpt"
    save_checkpoint(tiny_generator(), folder, version="tiny-eval")
    checkpoint, clean = load_systems([str(folder), "world:clean"])
    assert isinstance(checkpoint, CheckpointSystem) and checkpoint.name == str(folder)
    videos = checkpoint.generate(PROMPTS[:2], [3, 4])
    np.testing.assert_array_equal(videos, tiny_generator().generate(PROMPTS[:2], [3, 4]))
    geometry = (TINY_GEOMETRY.frames, TINY_GEOMETRY.height, TINY_GEOMETRY.width)
    assert clean.generate(PROMPTS[:2], [3, 4]).shape[1:4] == geometry
    # without a checkpoint, world systems use the WorldConfig default
    (default,) = load_systems(["world:defective"])
    assert default.generate(PROMPTS[:1], [0]).shape[1:4] == (16, 32, 32)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("world:blurry", "unknown world system 'world:blurry'"),
        ("no/such/checkpoint", "not a checkpoint folder"),
        ("   ", "empty system spec"),
    ],
)
def test_bad_specs_name_the_choices(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as error:
        parse_system_spec(spec)
    assert "world:clean, world:defective" in str(error.value)


def test_mismatched_prompts_and_seeds_are_refused() -> None:
    with pytest.raises(ValueError, match="2 prompts and 1 seeds"):
        world_system("clean").generate(PROMPTS[:2], [0])


def test_a_distilled_checkpoint_is_evaluated_as_it_is_served_chunk_by_chunk() -> None:
    (student,) = load_systems(["vpt/assets/models/shapes-distill"])
    assert isinstance(student, CheckpointSystem)
    assert isinstance(student.generator, ARGenerator)
    videos = student.generate(["red circle moving left"], [0])
    assert videos.shape == (1, 16, 32, 32, 3)

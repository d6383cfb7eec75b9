"""GSB of world systems end to end, where the answer is known: clean beats defective on visual
and motion quality and ties on text; clean wins only where the raw world's render carries a
defect; a system against itself is all Same, or a null result on other seeds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vpt.eval.comparison import SystemComparison, compare_systems, save_pair_sheet
from vpt.eval.prompt_set import load_prompt_set
from vpt.eval.systems import ReseededSystem, world_system
from vpt.world import parse_prompt

PROMPTS = load_prompt_set("shapes_eval_v1").prompts[:24]
SEEDS = [0, 1]


@pytest.fixture(scope="module")
def clean_vs_defective() -> SystemComparison:
    return compare_systems(world_system("clean"), world_system("defective"), PROMPTS, SEEDS)


def test_clean_beats_defective_on_visual_and_motion(clean_vs_defective: SystemComparison) -> None:
    report = clean_vs_defective.report
    assert report.pairs == 48 and report.system_b == "world:defective"
    for dimension in ("visual", "motion", "overall"):
        result = report.dimensions[dimension]
        assert result.gsb >= 0.9 and result.ci_low > 0.5 and result.p_value < 1e-9, dimension
    assert abs(report.dimensions["text"].gsb) <= 0.1


def test_pair_sheet_shows_a_and_b_side_by_side(
    clean_vs_defective: SystemComparison, tmp_path: Path
) -> None:
    path = save_pair_sheet(clean_vs_defective, tmp_path / "pairs.png", pairs=3)
    three = Image.open(path)
    four = Image.open(save_pair_sheet(clean_vs_defective, tmp_path / "four.png", pairs=4))
    assert four.height > three.height and four.width == three.width
    # each shown frame holds A | gap | B: wider than twice a frame
    assert three.width > 4 * 2 * clean_vs_defective.videos_a.shape[4]


def test_a_system_against_itself_on_the_same_seeds_is_all_same() -> None:
    report = compare_systems(world_system("clean"), world_system("clean"), PROMPTS, SEEDS).report
    for result in report.dimensions.values():
        assert (result.good, result.bad, result.gsb) == (0, 0, 0.0)
        assert (result.ci_low, result.ci_high, result.p_value) == (0.0, 0.0, 1.0)


def test_clean_wins_exactly_where_the_raw_render_is_damaged() -> None:
    raw = world_system("raw")
    comparison = compare_systems(world_system("clean"), raw, PROMPTS, SEEDS)
    damaged = np.array(
        [
            [not raw.defects_for(parse_prompt(p).attributes, s).is_clean for s in SEEDS]
            for p in PROMPTS
        ]
    )
    assert 0 < damaged.sum() < damaged.size
    margin = comparison.report.dimensions["overall"].margin
    overall = np.array(
        [
            [a.overall - b.overall for a, b in zip(*row, strict=True)]
            for row in zip(comparison.scores_a, comparison.scores_b, strict=True)
        ]
    )
    assert np.all(np.abs(overall[~damaged]) <= margin)  # undamaged pairs are all Same
    assert comparison.report.dimensions["overall"].bad == 0
    assert (
        comparison.report.dimensions["overall"].good == int((overall[damaged] > margin).sum()) > 0
    )


def test_a_varying_system_against_itself_on_other_seeds_is_a_null_result() -> None:
    raw = world_system("raw")
    report = compare_systems(raw, ReseededSystem(raw, 1000), PROMPTS, SEEDS).report
    assert report.dimensions["visual"].good + report.dimensions["visual"].bad > 0
    for dimension, result in report.dimensions.items():
        assert result.ci_low <= 0.0 <= result.ci_high, dimension
        assert result.p_value > 0.05, dimension


def test_bad_comparisons_are_refused() -> None:
    clean = world_system("clean")
    with pytest.raises(ValueError, match="distinct"):
        compare_systems(clean, clean, PROMPTS, [1, 1])
    with pytest.raises(ValueError, match="no prompts"):
        compare_systems(clean, clean, [], SEEDS)

"""GSB statistics on hand-made scores: labels, counts, the formula, margins, intervals, p."""

from __future__ import annotations

import numpy as np
import pytest

from vpt.eval.gsb import (
    DIMENSIONS,
    GSBConfig,
    GSBReport,
    bootstrap_gsb_interval,
    compare_score_tables,
    count_labels,
    label_pairs,
    seed_noise_margin,
    sign_test_p_value,
)


def test_labels_and_counts_follow_the_margin() -> None:
    a = np.array([0.90, 0.50, 0.50, 0.10, 0.70])
    b = np.array([0.50, 0.50, 0.53, 0.60, 0.64])
    labels = label_pairs(a, b, margin=0.05)
    assert labels.tolist() == [1, 0, 0, -1, 1]
    counts = count_labels(labels)
    assert (counts.good, counts.same, counts.bad) == (2, 2, 1)
    assert counts.gsb == pytest.approx((2 - 1) / 5)
    # a difference exactly at the margin is Same; with no margin every difference counts
    assert label_pairs(np.array([0.6]), np.array([0.5]), margin=0.1).tolist() == [0]
    assert label_pairs(a, b, margin=0.0).tolist() == [1, 0, -1, -1, 1]


def test_sign_test_matches_the_exact_binomial() -> None:
    # P(X >= 8 or X <= 2), X ~ Bin(10, 1/2) = 2 * (45 + 10 + 1) / 1024
    assert sign_test_p_value(8, 2) == pytest.approx(112 / 1024)
    assert sign_test_p_value(10, 0) == pytest.approx(2 / 1024)
    assert sign_test_p_value(5, 5) == pytest.approx(1.0)
    assert sign_test_p_value(0, 0) == 1.0


def test_seed_noise_margin_is_the_quantile_of_seed_to_seed_differences() -> None:
    # seed pairs: prompt 0 -> |0 - 0.1|; prompt 1 -> |0.5 - 0.9|
    table = np.array([[0.0, 0.1], [0.5, 0.9]])
    assert seed_noise_margin([table], quantile=0.5).margin == pytest.approx(0.25)
    assert seed_noise_margin([table], quantile=0.5).pairs == 2
    assert seed_noise_margin([table], quantile=0.5, floor=0.3).margin == 0.3
    # three seeds give three pairs per prompt; pooling two tables adds theirs
    three = np.array([[0.0, 0.2, 0.6]])
    noise = seed_noise_margin([three, table], quantile=1.0)
    assert noise.pairs == 5 and noise.margin == pytest.approx(0.6)
    one_seed = seed_noise_margin([np.array([[0.1], [0.9]])], quantile=0.75, floor=0.01)
    assert (one_seed.margin, one_seed.pairs) == (0.01, 0)


def test_bootstrap_interval_of_a_sure_win_is_a_point_and_of_a_coin_covers_zero() -> None:
    assert bootstrap_gsb_interval(np.ones((30, 2))) == (1.0, 1.0)
    coin = np.random.default_rng(0).permutation(np.repeat([-1, 1], 200)).reshape(200, 2)
    low, high = bootstrap_gsb_interval(coin)
    assert low < 0 < high and high - low < 0.3


def test_prompt_bootstrap_keeps_a_prompts_seeds_together() -> None:
    # every prompt wins on one seed and loses on the other: per prompt the net is exactly 0
    labels = np.tile(np.array([[1, -1]]), (40, 1))
    assert bootstrap_gsb_interval(labels, unit="prompt") == (0.0, 0.0)
    low, high = bootstrap_gsb_interval(labels, unit="pair")
    assert low < -0.1 and high > 0.1


def tables(rng: np.random.Generator, shift: float) -> tuple[dict[str, np.ndarray], ...]:
    base: dict[str, np.ndarray] = {d: rng.uniform(0.3, 0.7, size=(50, 2)) for d in DIMENSIONS}
    other: dict[str, np.ndarray] = {
        d: base[d] + shift + rng.normal(0, 0.05, size=(50, 2)) for d in DIMENSIONS
    }
    return base, other


def test_swapping_a_and_b_negates_gsb_with_a_pooled_margin() -> None:
    a, b = tables(np.random.default_rng(1), shift=0.03)
    forward = compare_score_tables(a, b, [0, 1])
    backward = compare_score_tables(b, a, [0, 1])
    for dimension in DIMENSIONS:
        there, back = forward.dimensions[dimension], backward.dimensions[dimension]
        assert (there.good, there.same, there.bad) == (back.bad, back.same, back.good)
        assert there.gsb == pytest.approx(-back.gsb)
        assert there.margin == back.margin and there.p_value == pytest.approx(back.p_value)


def test_a_clear_improvement_is_positive_with_a_tight_interval() -> None:
    b, a = tables(np.random.default_rng(2), shift=0.4)
    report = compare_score_tables(a, b, [0, 1], names=("new", "old"))
    for result in report.dimensions.values():
        assert result.gsb > 0.9 and result.ci_low > 0.8 and result.p_value < 1e-20
        assert result.good + result.same + result.bad == report.pairs == 100


def test_report_markdown_and_json_round_trip() -> None:
    a, b = tables(np.random.default_rng(3), shift=0.1)
    report = compare_score_tables(a, b, [7, 8], names=("x", "y"), config=GSBConfig(resamples=200))
    assert GSBReport.from_dict(report.to_dict()) == report
    markdown = report.to_markdown()
    visual = report.dimensions["visual"]
    assert "| dimension | G | S | B | GSB | 95% CI | p |" in markdown
    assert f"| visual | {visual.good} | {visual.same} | {visual.bad} |" in markdown
    assert len([line for line in markdown.splitlines() if line.startswith("| ")]) == 5


def test_bad_settings_and_tables_are_refused() -> None:
    with pytest.raises(ValueError, match="margin_quantile"):
        GSBConfig(margin_quantile=1.5)
    with pytest.raises(ValueError, match="resample_unit"):
        GSBConfig(resample_unit="seed")  # type: ignore[arg-type]
    a, b = tables(np.random.default_rng(4), shift=0.0)
    with pytest.raises(ValueError, match="3 seeds"):
        compare_score_tables(a, b, [0, 1, 2])
    with pytest.raises(ValueError, match="missing 'overall'"):
        compare_score_tables({d: a[d] for d in DIMENSIONS[:3]}, b, [0, 1])

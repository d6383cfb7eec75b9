"""Defects: how many, at which levels, and what they do to pixels."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from vpt.world import (
    AttributeName,
    Attributes,
    DefectConfig,
    DefectKind,
    Defects,
    WorldConfig,
    render_clip,
)
from vpt.world.defects import (
    apply_image_defects,
    flicker_pattern,
    jitter_offsets,
    misdescribe,
    sample_defects,
)

ALL_MENTIONED = tuple(AttributeName)


def test_a_defective_clip_gets_one_or_two_defects_within_their_ranges() -> None:
    config = DefectConfig()
    rng = np.random.default_rng(0)
    counts = []
    for _ in range(2000):
        defects = sample_defects(rng, config, ALL_MENTIONED)
        counts.append(len(defects.kinds))
        assert not defects.is_clean
        assert defects.blur == 0 or 0.6 <= defects.blur <= 1.5
        assert defects.noise == 0 or 6 <= defects.noise <= 25
        assert defects.jitter == 0 or 0.6 <= defects.jitter <= 1.5
        assert defects.flicker == 0 or 0.08 <= defects.flicker <= 0.25
    assert set(counts) == {1, 2}
    assert 0.4 < np.mean(np.array(counts) == 2) < 0.6


def test_a_caption_mismatch_picks_a_mentioned_attribute_or_is_not_drawn() -> None:
    rng = np.random.default_rng(1)
    mentioned = (AttributeName.SHAPE, AttributeName.SPEED)
    picked = set()
    for _ in range(500):
        defects = sample_defects(rng, DefectConfig(), mentioned)
        if defects.caption_mismatch is not None:
            picked.add(defects.caption_mismatch)
        assert sample_defects(rng, DefectConfig(), ()).caption_mismatch is None
    assert picked == set(mentioned)


def test_misdescribe_changes_exactly_one_attribute_and_stays_valid() -> None:
    rng = np.random.default_rng(2)
    for _ in range(300):
        truth = Attributes.sample(rng)
        name = AttributeName(rng.choice([n.value for n in AttributeName]))
        wrong = misdescribe(truth, name, rng)
        differing = [n for n in AttributeName if wrong.get(n) != truth.get(n)]
        assert differing == [name]


def test_flicker_pattern_and_jitter_offsets_have_exactly_the_recorded_spread() -> None:
    rng = np.random.default_rng(3)
    pattern = flicker_pattern(16, rng)
    assert pattern.mean() == pytest.approx(0.0, abs=1e-12)
    assert pattern.std() == pytest.approx(1 / np.sqrt(3))
    offsets = jitter_offsets(16, 1.2, rng)
    times = np.arange(16.0)
    for axis in range(2):
        slope, intercept = np.polyfit(times, offsets[:, axis], 1)
        assert abs(slope) < 1e-9 and abs(intercept) < 1e-9
    assert np.sqrt((offsets**2).sum() / (2 * 14)) == pytest.approx(1.2)
    assert (jitter_offsets(2, 1.2, rng) == 0).all()


def test_image_defects_blur_flicker_and_add_noise() -> None:
    rng = np.random.default_rng(4)
    clip = render_clip(Attributes.sample(rng), rng, WorldConfig()).frames
    blurred, _ = apply_image_defects(clip, Defects(blur=1.2), rng, scale=1.0)
    edges = (ndimage.sobel(clip.astype(float), axis=2) ** 2).sum()
    assert (ndimage.sobel(blurred.astype(float), axis=2) ** 2).sum() < 0.5 * edges
    flickered, record = apply_image_defects(clip, Defects(flicker=0.2), rng, scale=1.0)
    assert len(record.flicker_gains) == 16
    assert flickered.reshape(16, -1).mean(axis=1).std() > 0.02 * clip.mean()
    gray = np.full((16, 32, 32, 3), 128, dtype=np.uint8)
    noisy, _ = apply_image_defects(gray, Defects(noise=15.0), rng, scale=1.0)
    assert noisy.astype(float).std() == pytest.approx(15.0, rel=0.05)
    untouched, _ = apply_image_defects(clip, Defects(jitter=1.0), rng, scale=1.0)
    np.testing.assert_array_equal(untouched, clip)


def test_defect_config_rejects_bad_ranges_with_the_field_name() -> None:
    with pytest.raises(ValueError, match=r"DefectConfig\.noise_std"):
        DefectConfig(noise_std=(10.0, 5.0))
    with pytest.raises(ValueError, match="max_defects"):
        DefectConfig(max_defects=9)
    assert Defects(noise=3.0).kinds == (DefectKind.NOISE,)
    assert Defects().is_clean

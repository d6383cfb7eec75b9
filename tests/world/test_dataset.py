"""The data set: determinism, data mix, captions that match (or deliberately mismatch) clips."""

from __future__ import annotations

import numpy as np
import pytest

from vpt.world import (
    Attributes,
    CaptionRegister,
    ShapesWorld,
    WorldConfig,
    parse_prompt,
    render_clean,
    sample_clip,
)

MIX_CLIPS = 1000


@pytest.fixture(scope="module")
def mixed_world_clips() -> list:
    world = ShapesWorld(WorldConfig(), seed=3)
    return list(world.clips(0, MIX_CLIPS))


def test_same_seed_and_index_give_the_same_clip_whatever_was_drawn_before() -> None:
    config = WorldConfig()
    later = sample_clip(config, 7, 25)
    for index in range(5):
        sample_clip(config, 7, index)
    again = sample_clip(config, 7, 25)
    np.testing.assert_array_equal(later.frames, again.frames)
    assert (later.caption, later.attributes, later.defects) == (
        again.caption,
        again.attributes,
        again.defects,
    )


def test_different_seeds_or_indices_give_different_clips() -> None:
    config = WorldConfig()
    base = sample_clip(config, 1, 0)
    assert not np.array_equal(base.frames, sample_clip(config, 2, 0).frames)
    assert not np.array_equal(base.frames, sample_clip(config, 1, 1).frames)


def test_defect_fraction_matches_the_config(mixed_world_clips: list) -> None:
    defective = np.mean([not clip.defects.is_clean for clip in mixed_world_clips])
    tolerance = 4 * np.sqrt(0.3 * 0.7 / MIX_CLIPS)
    assert abs(defective - 0.3) < tolerance
    assert all(1 <= len(c.defects.kinds) <= 2 for c in mixed_world_clips if not c.defects.is_clean)
    zero = [sample_clip(WorldConfig(defect_fraction=0.0), 3, i) for i in range(50)]
    assert all(clip.defects.is_clean for clip in zero)


def test_clean_clips_mostly_get_detailed_captions_and_defective_short(
    mixed_world_clips: list,
) -> None:
    clean = [c for c in mixed_world_clips if c.defects.is_clean]
    defective = [c for c in mixed_world_clips if not c.defects.is_clean]
    detailed_clean = np.mean([c.register is CaptionRegister.DETAILED for c in clean])
    short_defective = np.mean([c.register is CaptionRegister.SHORT for c in defective])
    assert abs(detailed_clean - 0.8) < 0.06
    assert abs(short_defective - 0.8) < 0.08


def test_captions_state_the_truth_except_for_one_deliberate_mismatch(
    mixed_world_clips: list,
) -> None:
    mismatched = 0
    for clip in mixed_world_clips:
        parsed = parse_prompt(clip.caption)
        assert parsed.attributes == clip.caption_attributes, clip.caption
        wrong = [
            n
            for n in clip.caption_attributes.mentioned
            if clip.caption_attributes.get(n) != clip.attributes.get(n)
        ]
        if clip.defects.caption_mismatch is None:
            assert wrong == []
        else:
            assert wrong == [clip.defects.caption_mismatch]
            mismatched += 1
    assert mismatched > 20


def test_curated_world_is_clean_detailed_and_shows_the_same_objects() -> None:
    raw = ShapesWorld(WorldConfig(), seed=5)
    curated = ShapesWorld(WorldConfig(), seed=5, clean_only=True)
    for index in range(60):
        clip = curated[index]
        assert clip.defects.is_clean and clip.register is CaptionRegister.DETAILED
        assert clip.caption_attributes.is_complete
        assert clip.attributes == raw[index].attributes


def test_batch_stacks_frames_and_keeps_captions_in_order() -> None:
    world = ShapesWorld(WorldConfig(frames=8), seed=0)
    batch = world.batch([4, 1, 2])
    assert batch.frames.shape == (3, 8, 32, 32, 3)
    assert batch.captions == (world[4].caption, world[1].caption, world[2].caption)
    with pytest.raises(ValueError, match="at least one index"):
        world.batch([])
    with pytest.raises(ValueError, match="index must be >= 0"):
        world[-1]


def test_render_clean_is_deterministic_and_free_of_defects() -> None:
    config = WorldConfig()
    attributes = Attributes.sample(np.random.default_rng(0))
    first = render_clean(attributes, 9, config)
    np.testing.assert_array_equal(first, render_clean(attributes, 9, config))
    assert first.shape == (16, 32, 32, 3)
    assert len(np.unique(first.reshape(-1, 3), axis=0)) < 40  # palette plus edge mixes only

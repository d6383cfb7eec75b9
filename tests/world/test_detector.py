"""The analytic detector: accuracy on clean and defective clips, defect measures, robustness."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from vpt.world import (
    Attributes,
    Background,
    Color,
    DefectKind,
    Direction,
    Shape,
    Size,
    Speed,
    WorldConfig,
    detect,
    detect_batch,
    render_clean,
)
from vpt.world.detector_quality import MEASURES, attribute_accuracy, defect_auc, defect_spearman
from vpt.world.render import composite, draw_coverage

from .measurement import Measured, measure


def test_every_attribute_is_read_from_clean_clips(clean_measured: Measured) -> None:
    accuracy = attribute_accuracy(clean_measured.clips, clean_measured.detections)
    assert min(accuracy.values()) >= 0.99, accuracy


def test_attributes_survive_defects(defective_measured: Measured) -> None:
    accuracy = attribute_accuracy(defective_measured.clips, defective_measured.detections)
    assert min(accuracy.values()) >= 0.95, accuracy


@pytest.mark.parametrize("kind", list(MEASURES))
def test_defect_measures_rank_the_true_levels(
    defective_measured: Measured, kind: DefectKind
) -> None:
    rho = defect_spearman(defective_measured.clips, defective_measured.detections, kind)
    assert rho >= 0.8, (kind, rho)


@pytest.mark.parametrize("kind", list(MEASURES))
def test_clean_clips_score_better_than_defective_ones(
    clean_measured: Measured, defective_measured: Measured, kind: DefectKind
) -> None:
    clips = clean_measured.clips + defective_measured.clips
    detections = clean_measured.detections + defective_measured.detections
    assert defect_auc(clips, detections, kind) >= 0.95


def test_clean_clips_look_clean(clean_measured: Measured) -> None:
    for detection in clean_measured.detections:
        assert detection.object_count == 1 and detection.is_in_frame
        assert detection.color_consistency == 1.0 and detection.size_consistency > 0.97
        assert detection.noise < 1.0 and detection.jitter < 0.1 and detection.flicker < 0.01
        assert detection.sharpness > 0.75


def test_measured_geometry_and_motion_match_the_render(clean_measured: Measured) -> None:
    config = WorldConfig()
    for clip, detection in zip(
        clean_measured.clips[:50], clean_measured.detections[:50], strict=True
    ):
        expected = config.speed_px_per_frame(clip.attributes.speed)
        assert detection.motion_speed == pytest.approx(expected, rel=0.05)
        assert detection.object_radius == pytest.approx(
            config.radius(clip.attributes.size), rel=0.05
        )
        np.testing.assert_allclose(detection.centroids, clip.centres, atol=0.1)


def test_larger_longer_clips_are_read_too() -> None:
    config = WorldConfig(frames=24, height=64, width=64)
    for defect_fraction in (0.0, 1.0):
        measured = measure(replace(config, defect_fraction=defect_fraction), seed=4, count=40)
        accuracy = attribute_accuracy(measured.clips, measured.detections)
        assert min(accuracy.values()) >= 0.95, (defect_fraction, accuracy)


@pytest.mark.slow
def test_five_hundred_clips_each_clean_and_defective() -> None:
    clean = measure(WorldConfig(defect_fraction=0.0), seed=21, count=500)
    defective = measure(WorldConfig(defect_fraction=1.0), seed=22, count=500)
    assert min(attribute_accuracy(clean.clips, clean.detections).values()) >= 0.99
    assert min(attribute_accuracy(defective.clips, defective.detections).values()) >= 0.95
    for kind in MEASURES:
        assert defect_spearman(defective.clips, defective.detections, kind) >= 0.8, kind


def draw(centres_by_object: list[np.ndarray], frames: int = 16) -> np.ndarray:
    """Red circles of radius 4 at the given per-frame centres on black."""
    mask = np.zeros((frames, 32, 32), dtype=np.float32)
    for centres in centres_by_object:
        mask = np.maximum(mask, draw_coverage(Shape.CIRCLE, 4.0, centres, 32, 32))
    return composite(mask, (230, 40, 40), (12, 12, 12))


def test_two_objects_are_counted() -> None:
    left = np.column_stack([np.linspace(6, 12, 16), np.full(16, 8.0)])
    right = np.column_stack([np.linspace(26, 20, 16), np.full(16, 24.0)])
    detection = detect(draw([left, right]))
    assert detection.object_count == 2
    assert detection.color is Color.RED


def test_an_object_touching_the_edge_or_vanishing_is_not_in_frame() -> None:
    inside = np.column_stack([np.linspace(8, 20, 16), np.full(16, 16.0)])
    assert detect(draw([inside])).is_in_frame
    touching = np.column_stack([np.linspace(2, 14, 16), np.full(16, 16.0)])
    assert not detect(draw([touching])).is_in_frame
    vanishing = draw([inside])
    vanishing[10:] = 12
    detection = detect(vanishing)
    assert not detection.is_in_frame
    assert detection.size_consistency < 0.6 and detection.color_consistency < 0.7


def test_a_color_change_lowers_color_consistency() -> None:
    config = WorldConfig()
    attributes = Attributes(
        Shape.SQUARE, Color.GREEN, Size.LARGE, Direction.UP, Speed.SLOW, Background.BLACK
    )
    green = render_clean(attributes, 0, config)
    yellow = render_clean(replace(attributes, color=Color.YELLOW), 0, config)
    mixed = np.concatenate([green[:8], yellow[8:]])
    assert detect(green).color_consistency == 1.0
    assert 0.3 < detect(mixed).color_consistency < 0.7


def test_a_static_object_has_no_direction_or_speed() -> None:
    still = np.column_stack([np.full(16, 16.0), np.full(16, 16.0)])
    detection = detect(draw([still]))
    assert detection.shape is Shape.CIRCLE and detection.size is Size.SMALL
    assert detection.direction is None and detection.speed is None


@pytest.mark.parametrize(
    "frames",
    [
        np.zeros((16, 32, 32, 3), np.uint8),
        np.full((16, 32, 32, 3), 255, np.uint8),
        np.random.default_rng(0).integers(0, 256, (16, 32, 32, 3), dtype=np.uint8),
        np.tile((np.arange(32) % 8 < 4)[None, :, None, None] * 255, (16, 1, 32, 3)).astype(
            np.uint8
        ),
    ],
    ids=["black", "white", "noise", "stripes"],
)
def test_garbage_gives_no_object_instead_of_crashing(frames: np.ndarray) -> None:
    detection = detect(frames)
    assert detection.shape is None and detection.direction is None
    assert detection.object_count == 0 and not detection.is_in_frame


def test_single_frame_clip_reads_appearance_but_not_motion() -> None:
    clip = render_clean(
        Attributes(
            Shape.TRIANGLE, Color.MAGENTA, Size.LARGE, Direction.LEFT, Speed.FAST, Background.GRAY
        ),
        0,
        WorldConfig(),
    )
    detection = detect(clip[:1])
    assert (detection.shape, detection.color, detection.size) == (
        Shape.TRIANGLE,
        Color.MAGENTA,
        Size.LARGE,
    )
    assert detection.background is Background.GRAY and detection.direction is None


@pytest.mark.parametrize(
    ("frames", "message"),
    [
        (np.zeros((16, 32, 32, 3), np.float32), "uint8"),
        (np.zeros((16, 32, 32), np.uint8), r"\(F, H, W, 3\)"),
        (np.zeros((0, 32, 32, 3), np.uint8), "at least 1 frame"),
        (np.zeros((4, 8, 8, 3), np.uint8), "16x16"),
    ],
)
def test_bad_input_is_a_clear_value_error(frames: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        detect(frames)


def test_detect_batch_matches_detect(clean_measured: Measured) -> None:
    frames = np.stack([clip.frames for clip in clean_measured.clips[:5]])
    assert detect_batch(frames) == list(clean_measured.detections[:5])
    with pytest.raises(ValueError, match=r"\(N, F, H, W, 3\)"):
        detect_batch(frames[0])

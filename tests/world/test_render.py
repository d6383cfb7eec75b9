"""Rendering: geometry, motion, staying inside the frame, scaling with the frame size."""

from __future__ import annotations

import numpy as np
import pytest

from vpt.world import (
    Attributes,
    Background,
    Color,
    Direction,
    Shape,
    Size,
    Speed,
    WorldConfig,
    render_clip,
)
from vpt.world.sdf import AREA_PER_SQUARED_RADIUS


def attributes(**changes: object) -> Attributes:
    values: dict[str, object] = {
        "shape": Shape.CIRCLE,
        "color": Color.RED,
        "size": Size.SMALL,
        "direction": Direction.RIGHT,
        "speed": Speed.FAST,
        "background": Background.BLACK,
    }
    values.update(changes)
    return Attributes(**values)  # type: ignore[arg-type]


def test_clip_is_uint8_frames_of_the_configured_size() -> None:
    config = WorldConfig(frames=9, height=40, width=48)
    clip = render_clip(attributes(), np.random.default_rng(0), config)
    assert clip.frames.shape == (9, 40, 48, 3) and clip.frames.dtype == np.uint8
    assert clip.centres.shape == (9, 2)


def test_same_rng_gives_the_same_clip_and_another_start_differs() -> None:
    config = WorldConfig()
    first = render_clip(attributes(), np.random.default_rng(5), config)
    again = render_clip(attributes(), np.random.default_rng(5), config)
    other = render_clip(attributes(), np.random.default_rng(6), config)
    np.testing.assert_array_equal(first.frames, again.frames)
    assert not np.array_equal(first.frames, other.frames)


def test_pixels_are_exactly_the_palette_colors_away_from_edges() -> None:
    clip = render_clip(
        attributes(color=Color.CYAN, background=Background.NAVY),
        np.random.default_rng(1),
        WorldConfig(),
    )
    inside = clip.coverage == 1.0
    outside = clip.coverage == 0.0
    assert (clip.frames[inside] == (40, 220, 220)).all()
    assert (clip.frames[outside] == (20, 28, 88)).all()


@pytest.mark.parametrize("shape", list(Shape))
@pytest.mark.parametrize("size", list(Size))
def test_rendered_area_matches_the_geometry(shape: Shape, size: Size) -> None:
    config = WorldConfig()
    clip = render_clip(attributes(shape=shape, size=size), np.random.default_rng(2), config)
    expected = AREA_PER_SQUARED_RADIUS[shape] * config.radius(size) ** 2
    areas = clip.coverage.sum(axis=(1, 2))
    assert np.allclose(areas, expected, rtol=0.03)


@pytest.mark.parametrize("direction", list(Direction))
@pytest.mark.parametrize("speed", list(Speed))
def test_object_moves_at_constant_velocity_in_its_direction(
    direction: Direction, speed: Speed
) -> None:
    config = WorldConfig()
    clip = render_clip(
        attributes(direction=direction, speed=speed), np.random.default_rng(3), config
    )
    steps = np.diff(clip.centres, axis=0)
    unit = {
        Direction.LEFT: (-1, 0),
        Direction.RIGHT: (1, 0),
        Direction.UP: (0, -1),
        Direction.DOWN: (0, 1),
    }
    expected = np.array(unit[direction]) * config.speed_px_per_frame(speed)
    assert np.allclose(steps, expected)
    assert config.speed_px_per_frame(speed) == (0.5 if speed is Speed.SLOW else 1.0)


def test_object_stays_fully_inside_the_frame_even_with_jitter() -> None:
    config = WorldConfig()
    rng = np.random.default_rng(4)
    for _ in range(300):
        clip = render_clip(Attributes.sample(rng), rng, config, jitter_std=1.5)
        coverage = clip.coverage
        edges = (coverage[:, 0], coverage[:, -1], coverage[:, :, 0], coverage[:, :, -1])
        border = np.concatenate(edges, axis=1)
        assert border.max() < 1e-4
        assert np.allclose(coverage.sum(axis=(1, 2)), coverage[0].sum(), rtol=3e-2)


def test_geometry_scales_with_the_frame_and_long_clips_slow_down_to_fit() -> None:
    small, big = WorldConfig(), WorldConfig(height=64, width=64)
    assert big.radius(Size.LARGE) == 2 * small.radius(Size.LARGE)
    assert big.speed_px_per_frame(Speed.FAST) == 2 * small.speed_px_per_frame(Speed.FAST)
    long = WorldConfig(frames=24, height=64, width=64)
    assert long.motion_fit_factor < 1.0
    rng = np.random.default_rng(5)
    for _ in range(50):
        clip = render_clip(attributes(size=Size.LARGE, shape=Shape.TRIANGLE), rng, long)
        assert clip.coverage[:, 0].max() < 1e-4 and clip.coverage[:, :, -1].max() < 1e-4
    ratio = long.speed_px_per_frame(Speed.FAST) / long.speed_px_per_frame(Speed.SLOW)
    assert ratio == pytest.approx(2.0)


def test_impossible_configs_are_rejected_with_the_reason() -> None:
    with pytest.raises(ValueError, match="frames must be >= 1"):
        WorldConfig(frames=0)
    with pytest.raises(ValueError, match="does not fit"):
        WorldConfig(large_radius=15.0)
    with pytest.raises(ValueError, match="small_radius < large_radius"):
        WorldConfig(small_radius=8.0, large_radius=7.0)

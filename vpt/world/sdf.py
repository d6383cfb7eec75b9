"""Signed distance fields of the three shapes, and the anti-aliased coverage they give.

Every shape is sized by one "radius" r and centred on its area centroid, so that the centroid of
a rendered mask is the object's centre:

- circle: radius r;
- square: axis-aligned, half-side `SQUARE_HALF_SIDE * r` (about the circle's area);
- triangle: equilateral, pointing up, circumradius `TRIANGLE_CIRCUMRADIUS * r`.

Distances are in pixels, negative inside. Coverage of a pixel is `clip(0.5 - sdf, 0, 1)`, the
exact area fraction for a straight edge crossing a unit pixel at right angles.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from vpt.world.vocabulary import Shape

SQUARE_HALF_SIDE = 0.9
"""Half-side of a square of radius r, in units of r."""
TRIANGLE_CIRCUMRADIUS = 1.2
"""Circumradius of a triangle of radius r, in units of r."""
SQRT3 = math.sqrt(3.0)

AREA_PER_SQUARED_RADIUS: dict[Shape, float] = {
    Shape.CIRCLE: math.pi,
    Shape.SQUARE: 4.0 * SQUARE_HALF_SIDE**2,
    Shape.TRIANGLE: 3.0 * SQRT3 / 4.0 * TRIANGLE_CIRCUMRADIUS**2,
}
"""Area of each shape divided by r squared."""


@dataclass(frozen=True)
class Extents:
    """How far a shape reaches from its centre in each screen direction, in pixels."""

    left: float
    """Reach towards smaller x."""
    right: float
    """Reach towards larger x."""
    up: float
    """Reach towards smaller y (screen up)."""
    down: float
    """Reach towards larger y (screen down)."""


def shape_extents(shape: Shape, radius: float) -> Extents:
    """The bounding reach of `shape` of `radius` around its centroid."""
    if shape is Shape.CIRCLE:
        return Extents(radius, radius, radius, radius)
    if shape is Shape.SQUARE:
        half = SQUARE_HALF_SIDE * radius
        return Extents(half, half, half, half)
    circumradius = TRIANGLE_CIRCUMRADIUS * radius
    half_width = circumradius * SQRT3 / 2.0
    return Extents(half_width, half_width, circumradius, circumradius / 2.0)


def signed_distance(shape: Shape, radius: float, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """Signed distance to `shape` of `radius` at offsets (dx, dy) from its centre (y down)."""
    if shape is Shape.CIRCLE:
        return np.asarray(np.hypot(dx, dy) - radius)
    if shape is Shape.SQUARE:
        return _box_distance(dx, dy, SQUARE_HALF_SIDE * radius)
    return _triangle_distance(dx, dy, TRIANGLE_CIRCUMRADIUS * radius)


def coverage(shape: Shape, radius: float, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """Anti-aliased pixel coverage in [0, 1] of `shape` at offsets (dx, dy) from its centre."""
    return np.clip(0.5 - signed_distance(shape, radius, dx, dy), 0.0, 1.0)


def _box_distance(dx: np.ndarray, dy: np.ndarray, half_side: float) -> np.ndarray:
    qx = np.abs(dx) - half_side
    qy = np.abs(dy) - half_side
    outside = np.hypot(np.maximum(qx, 0.0), np.maximum(qy, 0.0))
    inside = np.minimum(np.maximum(qx, qy), 0.0)
    return np.asarray(outside + inside)


def _triangle_distance(dx: np.ndarray, dy: np.ndarray, circumradius: float) -> np.ndarray:
    """Inigo Quilez's exact equilateral-triangle distance, vertex up, centroid at the origin."""
    half_side = circumradius * SQRT3 / 2.0
    px = np.abs(dx) - half_side
    py = -dy + half_side / SQRT3
    is_folded = px + SQRT3 * py > 0.0
    fx = np.where(is_folded, (px - SQRT3 * py) / 2.0, px)
    fy = np.where(is_folded, (-SQRT3 * px - py) / 2.0, py)
    fx = fx - np.clip(fx, -2.0 * half_side, 0.0)
    return np.asarray(-np.hypot(fx, fy) * np.sign(fy))

"""Fitting blurred shape templates to an object mask: which shape, and how blurred.

For each frame used, a circle, a square and a triangle with the measured area are drawn at the
frame's centroid and blurred by each Gaussian sigma of `BLUR_GRID`; the (shape, sigma) with the
least squared error against the observed mask wins, and the sigma is refined by a parabola
through its neighbours. Matching areas and centroids first makes the fit blind to size and
position, and fitting the blur makes it robust to blurry clips. Everything happens in a square
crop around each centroid that holds the shape plus `TAIL_SIGMAS` of the widest blur; the blur
is a zero-padded Gaussian (normalised on the infinite line), so the crop gives exactly the
frame's values wherever the blurred template is not negligible.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from vpt.world.sdf import AREA_PER_SQUARED_RADIUS, coverage, shape_extents
from vpt.world.vocabulary import Shape

BLUR_GRID = (0.0, 0.3, 0.6, 0.9, 1.2, 1.6, 2.2)
"""Blur sigmas (reference pixels) the templates are tried at."""
MAX_FIT_FRAMES = 6
"""At most this many evenly spaced frames are used."""
TAIL_SIGMAS = 2.0
"""How many of the widest blur's sigmas the crop keeps around the shape."""
SHAPES = tuple(Shape)


@dataclass(frozen=True)
class ShapeFit:
    """The best template fit."""

    shape: Shape
    """Best-fitting outline."""
    radius: float
    """Its radius, pixels of the clip."""
    blur: float
    """Best-fitting blur sigma, pixels of the clip."""
    error: float
    """Squared error of the fit relative to the mask's energy."""


@dataclass(frozen=True)
class CropBoxes:
    """Square crops of side n around several centroids, for fancy indexing into (T, H, W)."""

    frame: np.ndarray
    """Index of the frame each crop comes from, (T, 1, 1)."""
    rows: np.ndarray
    """Row index of each crop pixel, (T, n, 1)."""
    columns: np.ndarray
    """Column index of each crop pixel, (T, 1, n)."""
    dx: np.ndarray
    """x offset of each crop pixel's centre from the centroid, (T, n, n)."""
    dy: np.ndarray
    """y offset of each crop pixel's centre from the centroid, (T, n, n)."""


def fit_shape(
    windowed: np.ndarray, centroids: np.ndarray, has_object: np.ndarray, area: float, scale: float
) -> ShapeFit:
    """Fit the mask `windowed` (F, H, W) with centroids (F, 2) and object `area` (pixels)."""
    indices = np.flatnonzero(has_object)
    if len(indices) > MAX_FIT_FRAMES:
        indices = indices[np.linspace(0, len(indices) - 1, MAX_FIT_FRAMES).round().astype(int)]
    height, width = windowed.shape[1:]
    radii = [float(np.sqrt(area / AREA_PER_SQUARED_RADIUS[shape])) for shape in SHAPES]
    reach = max(
        max(vars(shape_extents(shape, radius)).values())
        for shape, radius in zip(SHAPES, radii, strict=True)
    )
    sigmas = np.array(BLUR_GRID) * scale
    side = min(height, width, 2 * int(np.ceil(reach + TAIL_SIGMAS * sigmas[-1])) + 2)
    crop = crop_boxes(centroids[indices], side, height, width)
    observed = windowed[indices][crop.frame, crop.rows, crop.columns]
    templates = np.stack(
        [coverage(s, r, crop.dx, crop.dy) for s, r in zip(SHAPES, radii, strict=True)]
    ).astype(np.float32)
    cost = template_costs(templates, observed, gaussian_matrices(tuple(sigmas), side))
    blur_index, shape_index = np.unravel_index(int(np.argmin(cost)), cost.shape)
    energy = float((windowed[indices] ** 2).sum())
    error = (float(cost[blur_index, shape_index]) + energy) / max(energy, 1e-6)
    return ShapeFit(
        shape=SHAPES[shape_index],
        radius=radii[shape_index],
        blur=refine_minimum(sigmas, cost[:, shape_index], int(blur_index)),
        error=max(error, 0.0),
    )


def crop_boxes(centroids: np.ndarray, side: int, height: int, width: int) -> CropBoxes:
    """Crops of `side` pixels around `centroids` (T, 2) as (x, y), kept inside the frame."""
    steps = np.arange(side)
    corner = np.floor(centroids).astype(int) - side // 2
    corner = np.clip(corner, 0, np.array([width - side, height - side]))
    rows = corner[:, 1, None] + steps[None, :]
    columns = corner[:, 0, None] + steps[None, :]
    return CropBoxes(
        frame=np.arange(len(centroids))[:, None, None],
        rows=rows[:, :, None],
        columns=columns[:, None, :],
        dx=(columns[:, None, :] + 0.5 - centroids[:, 0, None, None]).astype(np.float32),
        dy=(rows[:, :, None] + 0.5 - centroids[:, 1, None, None]).astype(np.float32),
    )


def template_costs(templates: np.ndarray, observed: np.ndarray, blurs: np.ndarray) -> np.ndarray:
    """Squared error minus |observed|^2 of each blurred template, summed over frames: (K, S).

    `templates` (S, T, n, n) are blurred by each symmetric `blurs` (K, n, n) as B X B and
    compared with `observed` (T, n, n). Working one blur at a time on transposed images keeps
    every product one tall matrix product and every temporary small.
    """
    shapes, frames, side = templates.shape[0], templates.shape[1], templates.shape[2]
    flat = templates.reshape(-1, side)
    observed_transposed = observed.transpose(0, 2, 1)
    costs = np.empty((len(blurs), shapes))
    for level, blur in enumerate(blurs):
        once = (flat @ blur).reshape(-1, side, side)
        blurred_transposed = once.transpose(0, 2, 1).reshape(-1, side) @ blur
        blurred_transposed = blurred_transposed.reshape(shapes, frames, side, side)
        error = blurred_transposed * (blurred_transposed - 2.0 * observed_transposed)
        costs[level] = error.reshape(shapes, -1).sum(axis=1)
    return costs


@functools.lru_cache(maxsize=32)
def gaussian_matrices(sigmas: tuple[float, ...], side: int) -> np.ndarray:
    """Zero-padded Gaussian blur matrices (K, side, side); identity for sigma 0."""
    offsets = np.arange(side)
    distance = (offsets[:, None] - offsets[None, :]).astype(np.float64) ** 2
    line = np.arange(-side - 64, side + 65, dtype=np.float64) ** 2
    matrices = []
    for sigma in sigmas:
        if sigma <= 1e-6:
            matrices.append(np.eye(side))
            continue
        total = np.exp(-line / (2.0 * sigma**2)).sum()
        matrices.append(np.exp(-distance / (2.0 * sigma**2)) / total)
    stacked = np.stack(matrices)
    stacked[stacked < 1e-12] = 0.0  # float32 denormals would slow the products tenfold
    stacked = stacked.astype(np.float32)
    stacked.flags.writeable = False
    return stacked


def refine_minimum(grid: np.ndarray, cost: np.ndarray, index: int) -> float:
    """Parabolic refinement of the minimum of `cost` over `grid` around `index`."""
    if index == 0 or index == len(grid) - 1:
        return float(grid[index])
    left, middle, right = (float(c) for c in cost[index - 1 : index + 2])
    curvature = left - 2.0 * middle + right
    if curvature <= 0:
        return float(grid[index])
    offset = 0.5 * (left - right) / curvature
    step = grid[index + 1] - grid[index] if offset > 0 else grid[index] - grid[index - 1]
    return float(grid[index] + np.clip(offset, -0.5, 0.5) * step)

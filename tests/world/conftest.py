"""Shared clips and detections for the shapes-world tests (built once per session)."""

from __future__ import annotations

import pytest

from vpt.world import WorldConfig

from .measurement import Measured, measure

CLEAN_CLIPS = 200
"""Clean clips the detector tests read (the slow test reads 500)."""
DEFECTIVE_CLIPS = 300
"""Defective clips the detector tests read."""


@pytest.fixture(scope="session")
def clean_measured() -> Measured:
    return measure(WorldConfig(defect_fraction=0.0), seed=11, count=CLEAN_CLIPS)


@pytest.fixture(scope="session")
def defective_measured() -> Measured:
    return measure(WorldConfig(defect_fraction=1.0), seed=12, count=DEFECTIVE_CLIPS)

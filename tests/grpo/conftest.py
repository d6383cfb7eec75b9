"""A tiny SFT checkpoint (the real classes at tiny sizes) for GRPO runs to start from."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.tiny_models import tiny_generator
from vpt.checkpoint import save_checkpoint

TINY_SFT_VERSION = "tiny-sft"


@pytest.fixture(scope="session")
def sft_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("grpo") / "sft"
    save_checkpoint(tiny_generator(seed=0), folder, version=TINY_SFT_VERSION)
    return folder

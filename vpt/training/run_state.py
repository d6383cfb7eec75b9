"""Exact resume: the whole mutable state of a training run, saved atomically.

A run folder keeps `state/` (weights, EMA, optimizer, RNG states and the step counter). It is
written to a temporary sibling and renamed, so a kill at any moment leaves either the previous
state or the new one, never a torn one. Data order is a pure function of (seed, step), so
restoring the state continues the run bit-exactly.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

STATE_DIR = "state"


@dataclass
class RunState:
    """What a run needs to continue exactly where it stopped."""

    step: int
    model: dict[str, torch.Tensor]
    ema: dict[str, Any]
    optimizer: dict[str, Any]
    generator_state: torch.Tensor
    info: dict[str, Any]


def save_run_state(run_dir: Path, state: RunState) -> None:
    """Atomically replace `run_dir/state` with `state`."""
    run_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".state.", dir=run_dir))
    try:
        save_file(
            {k: v.contiguous() for k, v in state.model.items()}, staging / "model.safetensors"
        )
        torch.save(
            {"ema": state.ema, "optimizer": state.optimizer, "rng": state.generator_state},
            staging / "trainer.pt",
        )
        (staging / "info.json").write_text(json.dumps({"step": state.step, **state.info}))
        final = run_dir / STATE_DIR
        previous = run_dir / ".state.previous"
        if final.exists():
            os.replace(final, previous)
        os.replace(staging, final)
        shutil.rmtree(previous, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def load_run_state(run_dir: Path) -> RunState | None:
    """The saved state of `run_dir`, or None when the run has not saved one yet."""
    folder = run_dir / STATE_DIR
    if not folder.is_dir():
        previous = run_dir / ".state.previous"
        if not previous.is_dir():
            return None
        folder = previous  # killed between the two renames: the previous state is whole
    info = json.loads((folder / "info.json").read_text())
    trainer = torch.load(folder / "trainer.pt", weights_only=False)
    return RunState(
        step=int(info.pop("step")),
        model=load_file(folder / "model.safetensors"),
        ema=trainer["ema"],
        optimizer=trainer["optimizer"],
        generator_state=trainer["rng"],
        info=info,
    )

"""One training loop for every stage: AdamW, warm-up, gradient clipping, EMA, progress,
JSONL metrics, periodic atomic state saves and exact resume.

A stage supplies `compute_loss(step, generator) -> (loss, metrics)`; every random draw of the
step must come from `generator` (a `torch.Generator` whose state is saved with the run) and the
step's data must be a pure function of `step`, which makes resume bit-exact.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

from vpt.training.ema import EMA
from vpt.training.progress import ProgressLog
from vpt.training.run_state import RunState, load_run_state, save_run_state

LossFn = Callable[[int, torch.Generator], tuple[Tensor, dict[str, float]]]
StepHook = Callable[[int, "EMA | None"], dict[str, Any]]


@dataclass(frozen=True)
class OptimConfig:
    """Optimizer and schedule of a training stage."""

    lr: float = 1e-3
    """Peak learning rate of AdamW."""
    betas: tuple[float, float] = (0.9, 0.99)
    """AdamW betas."""
    weight_decay: float = 0.01
    """AdamW decoupled weight decay."""
    warmup_steps: int = 200
    """Linear warm-up from 0 to `lr`."""
    decay: Literal["cosine", "constant"] = "cosine"
    """After warm-up: `cosine` to 10% of lr at the last step, or `constant`."""
    grad_clip: float = 1.0
    """Clip the global gradient norm to this value (0 disables)."""
    ema_decay: float = 0.999
    """EMA decay of the weights (0 disables EMA)."""


@dataclass(frozen=True)
class LoopConfig:
    """Length, logging and saving cadence of a run."""

    steps: int = 1000
    """Total optimizer steps."""
    seed: int = 0
    """Seed of the run's random generator (noise, timesteps, dropout)."""
    log_every: int = 25
    """Write a metrics line every this many steps."""
    save_every: int = 250
    """Save the resumable state every this many steps."""
    stop_after: int = 0
    """Stop (as if killed) after this many steps of this invocation; 0 = run to the end."""


def learning_rate(config: OptimConfig, step: int, total_steps: int) -> float:
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    if config.decay == "constant":
        return config.lr
    progress = (step - config.warmup_steps) / max(1, total_steps - config.warmup_steps)
    return config.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


@dataclass
class LoopResult:
    """How a `train_loop` call ended."""

    step: int
    finished: bool
    ema: EMA | None
    cpu_seconds: float
    last_metrics: dict[str, float]


def train_loop(
    model: nn.Module,
    compute_loss: LossFn,
    run_dir: Path,
    optim: OptimConfig,
    loop: LoopConfig,
    *,
    desc: str,
    hooks: dict[int, StepHook] | None = None,
    info: dict[str, Any] | None = None,
) -> LoopResult:
    """Train `model` in place; resume from `run_dir/state` when present.

    `hooks` maps an interval N to a function `hook(step, ema)` called after every N-th step
    (e.g. evaluation); what it returns is logged to the metrics file.
    """
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        parameters, lr=optim.lr, betas=optim.betas, weight_decay=optim.weight_decay
    )
    ema = EMA(model, optim.ema_decay) if optim.ema_decay > 0 else None
    generator = torch.Generator().manual_seed(loop.seed)
    start_step, cpu_before = 0, 0.0
    saved = load_run_state(run_dir)
    if saved is not None:
        try:
            model.load_state_dict(saved.model, strict=True)
        except RuntimeError:
            raise ValueError(
                f"{run_dir} holds the state of a different model (parameter names or shapes "
                "differ); use a new run folder"
            ) from None
        optimizer.load_state_dict(saved.optimizer)
        if ema is not None:
            ema.load_state_dict(saved.ema)
        generator.set_state(saved.generator_state)
        start_step, cpu_before = saved.step, float(saved.info.get("cpu_seconds", 0.0))
    progress = ProgressLog(run_dir, loop.steps, start_step, desc)
    cpu_start = time.process_time()
    metrics = _logged_metrics(run_dir, start_step) if start_step else {}
    step = start_step

    def save(step: int) -> None:
        cpu = cpu_before + time.process_time() - cpu_start
        save_run_state(
            run_dir,
            RunState(
                step=step,
                model={k: v.detach().clone() for k, v in model.state_dict().items()},
                ema=ema.state_dict() if ema else {},
                optimizer=optimizer.state_dict(),
                generator_state=generator.get_state(),
                info={"cpu_seconds": cpu, **(info or {})},
            ),
        )

    model.train()
    try:
        while step < loop.steps:
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(optim, step, loop.steps)
            loss, metrics = compute_loss(step, generator)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss became {loss.item()} at step {step}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = (
                float(torch.nn.utils.clip_grad_norm_(parameters, optim.grad_clip))
                if optim.grad_clip > 0
                else 0.0
            )
            optimizer.step()
            if ema is not None:
                ema.update(model)
            step += 1
            metrics = {"loss": float(loss.detach()), "grad_norm": grad_norm, **metrics}
            progress.advance(1, loss=metrics["loss"])
            if step % loop.log_every == 0 or step == loop.steps:
                cpu = cpu_before + time.process_time() - cpu_start
                progress.log(
                    step,
                    lr=learning_rate(optim, step - 1, loop.steps),
                    cpu_seconds=round(cpu, 2),
                    **metrics,
                )
            for every, hook in (hooks or {}).items():
                if step % every == 0 or step == loop.steps:
                    progress.log(step, **hook(step, ema))
            if step % loop.save_every == 0 or step == loop.steps:
                save(step)
            if loop.stop_after and step - start_step >= loop.stop_after:
                break
    finally:
        progress.close()
    cpu_total = cpu_before + time.process_time() - cpu_start
    return LoopResult(step, step >= loop.steps, ema, cpu_total, metrics)


def _logged_metrics(run_dir: Path, step: int) -> dict[str, float]:
    """The last training metrics (loss and the loss function's own) logged at or before `step`,
    so a run resumed at its end still reports them."""
    found: dict[str, float] = {}
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return found
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:  # a line torn by a kill
            continue
        if isinstance(record, dict) and "loss" in record and record.get("step", step + 1) <= step:
            found = {
                key: float(value)
                for key, value in record.items()
                if key not in _LOG_BOOKKEEPING and isinstance(value, int | float)
            }
    return found


_LOG_BOOKKEEPING = frozenset({"step", "time", "lr", "cpu_seconds"})

"""Exponential moving average of model weights (Polyak averaging), as used by diffusion training.

shadow <- decay * shadow + (1 - decay) * weights after each optimizer step; the effective decay
ramps up as min(decay, (1 + step) / (10 + step)) so early averages are not dominated by the
random initialisation.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn


class EMA:
    """An EMA copy of a module's floating-point parameters."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.updates = 0
        self.shadow = {
            name: parameter.detach().clone()
            for name, parameter in model.named_parameters()
            if parameter.dtype.is_floating_point
        }

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for name, parameter in model.named_parameters():
            if name in self.shadow:
                self.shadow[name].lerp_(parameter.detach(), 1.0 - decay)

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        """Overwrite `model`'s parameters with the averaged ones."""
        for name, parameter in model.named_parameters():
            if name in self.shadow:
                parameter.copy_(self.shadow[name])

    @contextmanager
    def applied_to(self, model: nn.Module) -> Iterator[None]:
        """Temporarily give `model` the averaged weights (e.g. to evaluate), then restore."""
        live = {
            name: p.detach().clone() for name, p in model.named_parameters() if name in self.shadow
        }
        self.copy_to(model)
        try:
            yield
        finally:
            with torch.no_grad():
                for name, parameter in model.named_parameters():
                    if name in live:
                        parameter.copy_(live[name])

    def state_dict(self) -> dict[str, Tensor | int | float]:
        return {
            "decay": self.decay,
            "updates": self.updates,
            **{f"shadow.{name}": value for name, value in self.shadow.items()},
        }

    def load_state_dict(self, state: dict[str, Tensor | int | float]) -> None:
        self.decay = float(state["decay"])
        self.updates = int(state["updates"])
        for name in self.shadow:
            value = state[f"shadow.{name}"]
            assert isinstance(value, Tensor)
            self.shadow[name].copy_(value)

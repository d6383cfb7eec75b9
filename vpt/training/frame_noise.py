"""Per-frame noise levels for flow-matching training, after Diffusion Forcing (Chen et al.,
"Diffusion Forcing: Next-token Prediction Meets Full-Sequence Diffusion", arXiv 2407.01392,
sec. 3: every token of a sequence gets its own independent noise level).

With one sigma for the whole clip, a shapes-world model never has to read the prompt's motion
words: at high noise the best prediction is a blur, and at low noise the frames already show
where the object goes (docs/generator.md, items 6-9). Drawing a noise level per *transformer
frame* (a time position after the temporal patch) creates training inputs where some frames are
nearly clean and others noisy, so where the object goes next must come from the text. The loss
keeps its per-element target `noise - x0`; only `x_sigma` and the timestep embedding of each
frame change. Sampling is unchanged (one sigma per clip).

Two schemes, applied to a random `fraction` of each batch (the other rows keep the clip's
single sigma, drawn exactly as before):
- `independent`: every frame draws its own sigma from the training density;
- `clean_prefix`: frames before a random cut `k` in 1..T-1 get a low sigma, uniform in
  [0, `prefix_sigma_max`], and the frames from the cut on keep the row's sigma.

Shape legend: B batch, T transformer frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from vpt.sampling import TimestepSamplingConfig, sample_training_sigmas
from vpt.sampling.schedule import TRAINING_SIGMA_MARGIN

FrameNoiseKind = Literal["independent", "clean_prefix"]


@dataclass(frozen=True)
class FrameNoiseConfig:
    """Diffusion-Forcing-style per-frame noise levels in SFT (off by default)."""

    fraction: float = 0.0
    """Share of each batch whose noise level is drawn per transformer frame (0 = off)."""
    kind: FrameNoiseKind = "clean_prefix"
    """`independent` sigmas per frame, or a nearly clean prefix before a random cut."""
    prefix_sigma_max: float = 0.1
    """Highest sigma of a `clean_prefix` frame (drawn uniformly in [0, this])."""

    def validate(self) -> None:
        if not 0.0 <= self.fraction <= 1.0:
            raise ValueError(f"frame_noise.fraction must be in [0, 1], got {self.fraction}")
        if not 0.0 <= self.prefix_sigma_max < 1.0:
            raise ValueError(
                f"frame_noise.prefix_sigma_max must be in [0, 1), got {self.prefix_sigma_max}"
            )

    @property
    def is_enabled(self) -> bool:
        return self.fraction > 0.0


def per_frame_sigmas(
    sigma_B: Tensor,
    frames: int,
    config: FrameNoiseConfig,
    timesteps: TimestepSamplingConfig,
    rng: torch.Generator,
) -> Tensor:
    """Noise levels `(B, T)`: row b is `sigma_B[b]` on every frame, except for the rows drawn
    (with probability `config.fraction`) to get per-frame levels by `config.kind`.

    Draws from `rng` in a fixed order (rows, then the scheme's values for every row), so a
    batch's sigmas depend only on the generator's state.
    """
    config.validate()
    if frames < 2:
        raise ValueError(f"per-frame noise needs at least 2 transformer frames, got {frames}")
    batch = sigma_B.shape[0]
    is_per_frame_B = torch.rand(batch, generator=rng) < config.fraction
    sigma_BT = sigma_B.unsqueeze(1).repeat(1, frames)
    if config.kind == "independent":
        drawn = sample_training_sigmas(batch * frames, timesteps, rng).view(batch, frames)
    else:
        cut_B = torch.randint(1, frames, (batch,), generator=rng)
        low_BT = torch.rand(batch, frames, generator=rng) * config.prefix_sigma_max
        low_BT = low_BT.clamp(min=TRAINING_SIGMA_MARGIN)
        is_prefix_BT = torch.arange(frames).unsqueeze(0) < cut_B.unsqueeze(1)
        drawn = torch.where(is_prefix_BT, low_BT, sigma_BT)
    drawn = drawn.to(sigma_BT)
    return torch.where(is_per_frame_B.unsqueeze(1).to(sigma_BT.device), drawn, sigma_BT)

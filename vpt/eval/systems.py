"""Systems under evaluation: anything that turns (prompts, seeds) into videos.

A system spec is a string:

- a checkpoint folder (`runs/sft/checkpoint`, a Wan2.1 diffusers folder): its `Generator` with
  its default sampler settings;
- `world:clean`: the shapes world's clean render of what the prompt asks for, with the
  attributes the prompt leaves open drawn from the seed (an upper bound on what a generator
  can show);
- `world:defective`: the same render with the world's strongest image defects all applied
  (blur 1.5, noise 25, jitter 1.5, flicker 0.25; the top of each `DefectConfig` range), the
  noise and flicker drawn from the seed. It still shows exactly what the prompt asks for.
- `world:raw`: the same render with the raw world's defect mix, drawn per (prompt, seed): 30%
  of videos get 1-2 image defects at levels drawn from the `DefectConfig` ranges. Its quality
  varies from seed to seed like a generator's, which makes it the null case for GSB.

World systems render at the geometry of the checkpoint they are compared with, else at the
`WorldConfig` default (16 frames of 32x32).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal, Protocol, cast, get_args

import numpy as np

from vpt.ar_generator import DISTILL_STAGE, ARGenerator, load_ar_generator
from vpt.checkpoint import load_generator
from vpt.eval.reference_renders import render_reference, sample_raw_defects, strongest_defects
from vpt.generator import Generator, SamplerSettings, VideoGeometry
from vpt.world.defects import Defects
from vpt.world.parser import parse_prompt
from vpt.world.render import WorldConfig
from vpt.world.vocabulary import PromptAttributes

WorldCondition = Literal["clean", "defective", "raw"]
"""Which reference render a world system shows."""
WORLD_PREFIX = "world:"
"""Prefix of the specs of world systems."""


class System(Protocol):
    """Something that makes one video per (prompt, seed); the same pair gives the same video."""

    @property
    def name(self) -> str:
        """How reports name this system (its spec)."""
        ...

    def generate(self, prompts: Sequence[str], seeds: Sequence[int]) -> np.ndarray:
        """uint8 videos (B, F, H, W, 3), one per (prompt, seed)."""
        ...


@dataclass(frozen=True)
class SystemSpec:
    """A parsed system spec."""

    text: str
    """The spec as given."""
    checkpoint: Path | None = None
    """The checkpoint folder, for a checkpoint spec."""
    condition: WorldCondition | None = None
    """The reference condition, for a world spec."""


@dataclass
class CheckpointSystem:
    """A generator from a checkpoint, sampled with its own defaults unless `sampler` is set."""

    generator: Generator | ARGenerator
    """The model (a distilled student samples chunk by chunk, as it is served)."""
    name: str
    """How reports name it (its checkpoint path)."""
    sampler: SamplerSettings | None = None
    """Sampler settings; None for the checkpoint's defaults."""
    batch_size: int = 16
    """Videos per forward batch."""

    def generate(self, prompts: Sequence[str], seeds: Sequence[int]) -> np.ndarray:
        """uint8 videos (B, F, H, W, 3), one per (prompt, seed)."""
        _check_pairs(prompts, seeds)
        return self.generator.generate(
            list(prompts), [int(s) for s in seeds], self.sampler, batch_size=self.batch_size
        )


@dataclass(frozen=True)
class WorldSystem:
    """The world's reference render of each prompt, clean or damaged as `condition` says."""

    condition: WorldCondition
    """Clean, defective (strongest defects) or raw (the raw world's defect mix)."""
    config: WorldConfig = field(default_factory=WorldConfig)
    """Geometry of the renders, defect ranges and the raw world's defect fraction."""

    @property
    def name(self) -> str:
        """`world:` and the condition."""
        return f"{WORLD_PREFIX}{self.condition}"

    def defects_for(self, stated: PromptAttributes, seed: int) -> Defects:
        """The defects of the render of (`stated`, `seed`)."""
        if self.condition == "defective":
            return strongest_defects(self.config.defects)
        if self.condition == "raw":
            return sample_raw_defects(stated, seed, self.config)
        return Defects()

    def generate(self, prompts: Sequence[str], seeds: Sequence[int]) -> np.ndarray:
        """uint8 videos (B, F, H, W, 3), one per (prompt, seed)."""
        _check_pairs(prompts, seeds)
        videos = []
        for prompt, seed in zip(prompts, seeds, strict=True):
            stated = parse_prompt(prompt).attributes
            defects = self.defects_for(stated, int(seed))
            videos.append(render_reference(stated, int(seed), self.config, defects))
        return np.stack(videos)


@dataclass(frozen=True)
class ReseededSystem:
    """`system` run on other seeds (seed + `offset`): a null comparison of a system with
    itself on independent draws."""

    system: System
    """The system to run."""
    offset: int
    """Added to every seed."""

    @property
    def name(self) -> str:
        """The wrapped system's name with the seed offset."""
        return f"{self.system.name}+seed{self.offset}"

    def generate(self, prompts: Sequence[str], seeds: Sequence[int]) -> np.ndarray:
        """The wrapped system's videos for the shifted seeds."""
        return self.system.generate(prompts, [int(s) + self.offset for s in seeds])


def world_system(condition: WorldCondition, geometry: VideoGeometry | None = None) -> WorldSystem:
    """The world system for `condition` at `geometry` (the `WorldConfig` default when None)."""
    config = WorldConfig()
    if geometry is not None:
        config = replace(
            config,
            frames=geometry.frames,
            height=geometry.height,
            width=geometry.width,
            fps=geometry.fps,
        )
    return WorldSystem(condition, config)


def parse_system_spec(text: str) -> SystemSpec:
    """Parse a spec: `world:clean`, `world:defective`, `world:raw` or a checkpoint folder."""
    conditions = get_args(WorldCondition)
    choices = f"a checkpoint folder or one of {', '.join(WORLD_PREFIX + c for c in conditions)}"
    spec = text.strip()
    if not spec:
        raise ValueError(f"empty system spec; give {choices}")
    if spec.startswith(WORLD_PREFIX):
        condition = spec.removeprefix(WORLD_PREFIX)
        if condition not in conditions:
            raise ValueError(f"unknown world system {spec!r}; give {choices}")
        return SystemSpec(spec, condition=cast(WorldCondition, condition))
    path = Path(spec)
    if not path.is_dir():
        raise ValueError(
            f"system {spec!r} is not a checkpoint folder (no such folder); give {choices}"
        )
    return SystemSpec(spec, checkpoint=path)


def load_systems(specs: Sequence[str | SystemSpec]) -> list[System]:
    """The systems of `specs`, in order; world systems take the first checkpoint's geometry."""
    parsed = [s if isinstance(s, SystemSpec) else parse_system_spec(s) for s in specs]
    checkpoints: dict[int, CheckpointSystem] = {}
    for index, spec in enumerate(parsed):
        if spec.checkpoint is not None:
            loaded = load_generator(spec.checkpoint)
            is_student = loaded.manifest is not None and loaded.manifest.stage == DISTILL_STAGE
            generator = load_ar_generator(spec.checkpoint) if is_student else loaded.generator
            checkpoints[index] = CheckpointSystem(generator, name=spec.text)
    geometry = next((c.generator.config.geometry for c in checkpoints.values()), None)
    systems: list[System] = []
    for index, spec in enumerate(parsed):
        if index in checkpoints:
            systems.append(checkpoints[index])
        else:
            assert spec.condition is not None
            systems.append(world_system(spec.condition, geometry))
    return systems


def _check_pairs(prompts: Sequence[str], seeds: Sequence[int]) -> None:
    if len(prompts) != len(seeds):
        raise ValueError(f"got {len(prompts)} prompts and {len(seeds)} seeds; give one seed each")
    if not prompts:
        raise ValueError("no prompts to generate; give at least one (prompt, seed) pair")

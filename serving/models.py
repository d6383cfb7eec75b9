"""Resident model versions and the active reference that requests read (weight hot-swap).

The server holds every loaded version as an immutable `ResidentModel` and points `active` at one
of them. A request reads `active` once when it starts and keeps that object to the end, so a
generation never mixes versions and in-flight streams finish on the weights they started with;
activation only moves the reference (between requests, never inside one).

Staging a checkpoint (`stage`) verifies the manifest hashes of every file, loads it beside the
active model (a shadow copy), checks that its tensor names, shapes and dtypes and its video
geometry equal the active model's, and runs a fixed-seed smoke generation that must give finite
latents and a video of the right shape. Any failure raises `StagingError` naming the reason and
leaves the serving model untouched. A checkpoint whose manifest stage is `distill` is a causal
student and streams chunk by chunk through `vpt.ar_generator.ARStreamer`; any other streams
through `BidirectionalStreamer`; the service code is the same. `activate` is a compare-and-set
on the expected current version; `rollback` re-activates the previous version, which stays
resident.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from vpt.ar_generator import DISTILL_STAGE, ARStreamer, load_ar_generator
from vpt.checkpoint import CheckpointError, load_generator, read_manifest
from vpt.generator import Generator, VideoGeometry
from vpt.streaming import BidirectionalStreamer, StreamingGenerator, StreamRequest

SMOKE_PROMPT = "red circle moving left"
SMOKE_SEED = 0
STUDENT_MAX_STEPS = 50
"""A distilled student's few-step sampler accepts at most this many steps per chunk."""
MAX_RESIDENT = 4
"""Versions kept loaded at once (active, previous and staged ones); the oldest other is evicted."""

StagingFailure = Literal["not_found", "checkpoint", "incompatible", "smoke"]


class StagingError(RuntimeError):
    """A checkpoint was refused; `reason` is a low-cardinality label for metrics."""

    def __init__(self, reason: StagingFailure, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class VersionError(RuntimeError):
    """An activation or rollback was refused (unknown version, stale expectation, no previous)."""


@dataclass(frozen=True)
class ModelIdentity:
    """Which weights: family name, manifest version, content digest."""

    name: str
    version: str
    digest: str


@dataclass(frozen=True, eq=False)
class ResidentModel:
    """One loaded, verified version."""

    identity: ModelIdentity
    streamer: StreamingGenerator
    generator: Generator
    """The bidirectional generator, or the teacher-format base of a distilled student (its
    text encoder, autoencoder and transformer weights: what the tensor check compares)."""
    path: str
    stage: str
    parent: str | None
    loaded_at: float
    is_guidance_supported: bool = True
    """False for a distilled student (it samples without classifier-free guidance)."""
    max_steps: int = 1000
    """Most denoising steps a request may ask for."""

    @property
    def geometry(self) -> VideoGeometry:
        return self.streamer.geometry


def tensor_signature(generator: Generator) -> dict[str, tuple[tuple[int, ...], str]]:
    """name -> (shape, dtype) of every transformer and autoencoder tensor."""
    signature = {}
    for prefix, module in (("transformer", generator.transformer), ("vae", generator.autoencoder)):
        for name, tensor in module.state_dict().items():
            signature[f"{prefix}.{name}"] = (tuple(tensor.shape), str(tensor.dtype))
    return signature


def signature_differences(
    expected: dict[str, tuple[tuple[int, ...], str]],
    actual: dict[str, tuple[tuple[int, ...], str]],
    limit: int = 5,
) -> list[str]:
    """Human-readable differences between two tensor signatures (at most `limit`)."""
    problems = [f"missing tensor {name}" for name in sorted(set(expected) - set(actual))]
    problems += [f"unexpected tensor {name}" for name in sorted(set(actual) - set(expected))]
    for name in sorted(set(expected) & set(actual)):
        if expected[name] != actual[name]:
            problems.append(f"{name}: expected {expected[name]}, got {actual[name]}")
    return problems[:limit] + (
        [f"... {len(problems) - limit} more"] if len(problems) > limit else []
    )


def smoke_test(streamer: StreamingGenerator, generator: Generator | None) -> None:
    """Fixed-seed generation: a video of the model's geometry that is not one flat colour, and,
    for a bidirectional generator, finite latents."""
    if generator is not None:
        latents = generator.generate_latents([SMOKE_PROMPT], [SMOKE_SEED])
        if not torch.isfinite(latents).all():
            raise StagingError("smoke", "smoke generation produced non-finite latents (NaN/inf)")
        video = generator.decode(latents)[0]
    else:
        request = StreamRequest(SMOKE_PROMPT, SMOKE_SEED, streamer.default_sampler)
        chunks = [chunk.frames for chunk in streamer.stream(request, lambda: False)]
        video = np.concatenate(chunks)
    geometry = streamer.geometry
    expected = (geometry.frames, geometry.height, geometry.width, 3)
    if video.shape != expected:
        raise StagingError(
            "smoke", f"smoke generation gave a video of shape {video.shape}, expected {expected}"
        )
    if video.min() == video.max():
        raise StagingError("smoke", "smoke generation gave a video of one flat colour")


class ModelRegistry:
    """The resident versions and the active one; thread-safe."""

    def __init__(self, name: str, device: str = "cpu", is_smoke_test_enabled: bool = True) -> None:
        self.name = name
        self.device = device
        self.is_smoke_test_enabled = is_smoke_test_enabled
        self._lock = threading.Lock()
        self._resident: dict[str, ResidentModel] = {}
        self._active: ResidentModel | None = None
        self._previous: ResidentModel | None = None

    @property
    def active(self) -> ResidentModel:
        """The version new requests use (read once per request)."""
        model = self._active
        if model is None:
            raise VersionError("no model is active yet")
        return model

    @property
    def previous(self) -> ResidentModel | None:
        return self._previous

    def versions(self) -> list[ResidentModel]:
        with self._lock:
            return sorted(self._resident.values(), key=lambda m: m.loaded_at)

    def add(self, generator: Generator, identity: ModelIdentity, path: str = "") -> ResidentModel:
        """Register an already-loaded generator (tests, in-process use); activates the first."""
        model = ResidentModel(
            identity=identity,
            streamer=BidirectionalStreamer(generator),
            generator=generator,
            path=path,
            stage="",
            parent=None,
            loaded_at=time.monotonic(),
        )
        with self._lock:
            self._admit(model)
            if self._active is None:
                self._active = model
        return model

    def stage(self, path: str | Path) -> ResidentModel:
        """Verify, load and smoke-test a checkpoint; keep it resident (not active)."""
        folder = Path(path)
        if not folder.is_dir():
            raise StagingError("not_found", f"checkpoint folder {folder} does not exist")
        if not (folder / "manifest.json").is_file():
            raise StagingError(
                "checkpoint", f"{folder} has no manifest.json; only verified vpt checkpoints serve"
            )
        try:
            manifest = read_manifest(folder)
            streamer: StreamingGenerator
            if manifest.stage == DISTILL_STAGE:  # a causal student: chunk-by-chunk streaming
                student = load_ar_generator(folder, self.device)
                generator, streamer = student.base, ARStreamer(student)
            else:
                generator = load_generator(folder, self.device).generator
                streamer = BidirectionalStreamer(generator)
        except CheckpointError as error:
            raise StagingError("checkpoint", str(error)) from None
        is_student = manifest.stage == DISTILL_STAGE
        current = self._active
        if current is not None:
            if generator.config.geometry != current.geometry:
                raise StagingError(
                    "incompatible",
                    f"{folder} generates {generator.config.geometry}, the serving model "
                    f"{current.geometry}; the service contract would change",
                )
            differences = signature_differences(
                tensor_signature(current.generator), tensor_signature(generator)
            )
            if differences:
                raise StagingError(
                    "incompatible",
                    f"{folder} does not match the serving model's tensors: "
                    + "; ".join(differences),
                )
        if self.is_smoke_test_enabled:
            smoke_test(streamer, None if is_student else generator)
        files = json.dumps(manifest.files, sort_keys=True).encode()
        identity = ModelIdentity(self.name, manifest.version, hashlib.sha256(files).hexdigest())
        model = ResidentModel(
            identity=identity,
            streamer=streamer,
            generator=generator,
            path=str(folder),
            stage=manifest.stage,
            parent=manifest.parent,
            loaded_at=time.monotonic(),
            is_guidance_supported=not is_student,
            max_steps=STUDENT_MAX_STEPS if is_student else 1000,
        )
        with self._lock:
            existing = self._resident.get(identity.version)
            if existing is not None and existing.identity.digest != identity.digest:
                raise StagingError(
                    "checkpoint",
                    f"version {identity.version} is already resident with other weights "
                    f"(digest {existing.identity.digest[:12]} vs {identity.digest[:12]}); "
                    "versions must be unique",
                )
            if existing is not None:
                return existing
            self._admit(model)
            if self._active is None:
                self._active = model
        return model

    def activate(
        self, version: str, expected_current: str = ""
    ) -> tuple[ResidentModel, ResidentModel | None]:
        """Point `active` at a resident version; returns (active, previous)."""
        with self._lock:
            target = self._resident.get(version)
            if target is None:
                raise VersionError(
                    f"version {version!r} is not resident; stage it first (resident: "
                    f"{', '.join(sorted(self._resident)) or 'none'})"
                )
            current = self._active
            current_version = current.identity.version if current else ""
            if expected_current and expected_current != current_version:
                raise VersionError(
                    f"expected current version {expected_current!r} but {current_version!r} "
                    "is active; re-read the model info and retry"
                )
            if current is not target:
                self._previous = current
                self._active = target
            return target, self._previous

    def rollback(self) -> ResidentModel:
        """Re-activate the previous version; the rolled-back one becomes the previous."""
        with self._lock:
            previous = self._previous
            if previous is None:
                raise VersionError("there is no previous version to roll back to")
            self._previous, self._active = self._active, previous
            return previous

    def _admit(self, model: ResidentModel) -> None:
        self._resident[model.identity.version] = model
        keep = {m for m in (self._active, self._previous, model) if m is not None}
        for version, resident in sorted(self._resident.items(), key=lambda i: i[1].loaded_at):
            if len(self._resident) <= MAX_RESIDENT:
                break
            if resident not in keep:
                del self._resident[version]

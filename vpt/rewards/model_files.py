"""Reward model folders: weights, config, ONNX graph and a verified manifest.

A folder `<models_dir>/<name>/` holds

    config.json         {"name": ..., "model": RewardModelConfig}
    model.safetensors   the torch weights
    model.onnx          the same model exported for onnxruntime / Triton
    manifest.json       vpt's checkpoint manifest (version, recipe, metrics, sha256 of each file)

Loading verifies every file against the manifest (`vpt.checkpoint.verify_checkpoint`) and
refuses a missing, truncated or modified one. The trained models ship in
`vpt/assets/rewards/` (`PACKAGED_REWARDS`).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file

from vpt.checkpoint import MANIFEST, CheckpointError, Manifest, sha256_file, verify_checkpoint
from vpt.config import ConfigError, config_from_dict, config_to_dict
from vpt.rewards.networks import RewardModelConfig, RewardModule, build_reward_model

PACKAGED_REWARDS = Path(__file__).resolve().parent.parent / "assets" / "rewards"
"""The reward models vpt ships (trained by `recipes/shapes_rewards.yaml`)."""
PACKAGED = "packaged"
"""A `models_dir` value meaning `PACKAGED_REWARDS`."""
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
ONNX_FILE = "model.onnx"


@dataclass
class LoadedRewardModel:
    """A reward model in eval mode, with its folder and manifest."""

    name: str
    model: RewardModule
    config: RewardModelConfig
    manifest: Manifest | None
    """None for a model that has not been saved yet."""
    path: Path

    @property
    def onnx_path(self) -> Path:
        """The exported ONNX graph of this model."""
        return self.path / ONNX_FILE


def resolve_models_dir(models_dir: str | Path) -> Path:
    """`packaged` -> the shipped folder; anything else -> that folder, which must exist."""
    folder = PACKAGED_REWARDS if str(models_dir) == PACKAGED else Path(models_dir)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"reward models folder {folder} does not exist; train one with `vpt train rewards` "
            f"or use '{PACKAGED}'"
        )
    return folder


def save_reward_model(
    model: RewardModule,
    folder: Path,
    *,
    name: str,
    version: str,
    recipe: dict[str, Any],
    steps: int,
    metrics: dict[str, Any],
    onnx_bytes: bytes,
) -> None:
    """Write `folder` atomically (weights, config, ONNX, manifest); replaces an old one."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        save_file(
            {k: v.detach().contiguous() for k, v in model.state_dict().items()},
            staging / WEIGHTS_FILE,
        )
        config = {"name": name, "model": config_to_dict(model.config)}
        (staging / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
        (staging / ONNX_FILE).write_bytes(onnx_bytes)
        files = {
            path.name: {"sha256": sha256_file(path), "bytes": path.stat().st_size}
            for path in sorted(staging.iterdir())
        }
        manifest = Manifest(
            version=version,
            stage="reward",
            created_at=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            recipe=recipe,
            steps=steps,
            metrics=metrics,
            files=files,
        )
        (staging / MANIFEST).write_text(json.dumps(dataclasses.asdict(manifest), indent=2) + "\n")
        for path in staging.iterdir():
            path.chmod(0o644)
        staging.chmod(0o755)  # mkdtemp makes it private; a model folder is meant to be shared
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def read_reward_config(folder: Path) -> tuple[str, RewardModelConfig]:
    """The name and model config stored in `folder/config.json`."""
    path = folder / CONFIG_FILE
    if not path.is_file():
        raise CheckpointError(f"{folder} has no {CONFIG_FILE}: not a reward model folder")
    data = json.loads(path.read_text())
    try:
        config = config_from_dict(RewardModelConfig, data["model"], where=f"{path}:model")
    except (KeyError, ConfigError) as error:
        raise CheckpointError(f"{path} is not a valid reward model config: {error}") from None
    return str(data.get("name", folder.name)), config


def load_reward_model(folder: str | Path) -> LoadedRewardModel:
    """Verify and load the reward model in `folder` (eval mode, no gradients)."""
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"reward model folder {root} does not exist")
    manifest = verify_checkpoint(root)
    name, config = read_reward_config(root)
    model = build_reward_model(config)
    try:
        model.load_state_dict(load_file(root / WEIGHTS_FILE), strict=True)
    except RuntimeError as error:
        raise CheckpointError(f"{root / WEIGHTS_FILE} does not fit its config: {error}") from None
    model.eval().requires_grad_(False)
    return LoadedRewardModel(name, model, config, manifest, root)

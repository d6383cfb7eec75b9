"""A finite training set of world clips, encoded once into autoencoder latents.

Real video training sets are finite collections of clips with captions; this mirrors that:
`num_clips` clips are drawn from the world (skipping held-out attribute combinations), encoded
by the frozen autoencoder, and cached in the run folder keyed by everything that determines
them, so a resumed or repeated run reuses them. The order of clips in step `s` is a pure
function of (seed, s): a fresh permutation per epoch.

Shape legend: N clips, C latent channels, F latent frames, H/W latent height/width.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import Tensor
from tqdm import tqdm

from vpt.config import config_to_dict
from vpt.generator import uint8_to_pixels
from vpt.models.autoencoder import PixelSpace, VideoAutoencoder
from vpt.world import Clip, ShapesWorld, WorldConfig
from vpt.world.splits import is_held_out


@dataclass(frozen=True)
class LatentDataConfig:
    """Which world clips make up the training set."""

    world: WorldConfig = field(default_factory=WorldConfig)
    """World geometry and defect mix."""
    seed: int = 0
    """Seed of the clips."""
    num_clips: int = 20_000
    """Size of the training set."""
    curated: bool = False
    """Keep only clean clips whose captions are detailed (the SFT-curation filter)."""
    exclude_held_out: bool = True
    """Skip the attribute combinations reserved for evaluation."""


@dataclass
class LatentDataset:
    """Training latents and their captions: float16 `(N, C, F, H, W)` autoencoder latents, or
    uint8 `(N, F, H, W, 3)` frames in pixel space (converted to [-1, 1] on access)."""

    latents: Tensor
    captions: list[str]

    def __len__(self) -> int:
        return len(self.captions)

    def get(self, indices: Tensor) -> Tensor:
        """Float32 latents `(B, C, F, H, W)` of `indices`."""
        chosen = self.latents[indices]
        if chosen.dtype == torch.uint8:
            return uint8_to_pixels(chosen.numpy())
        return chosen.float()

    def batch_indices(self, step: int, batch_size: int, seed: int) -> Tensor:
        """Indices of step `step`: consecutive slices of a per-epoch random permutation."""
        per_epoch = len(self) // batch_size
        if per_epoch == 0:
            raise ValueError(f"dataset of {len(self)} clips is smaller than batch {batch_size}")
        epoch, position = divmod(step, per_epoch)
        order = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed + epoch))
        return order[position * batch_size : (position + 1) * batch_size]


def is_curated(clip: Clip) -> bool:
    """A clip the SFT curation keeps: no defects and a detailed (all-attribute) caption."""
    return clip.defects.is_clean and clip.caption_attributes.is_complete


def _cache_key(config: LatentDataConfig, autoencoder_digest: str) -> str:
    payload = json.dumps(
        {"data": config_to_dict(config), "ae": autoencoder_digest}, sort_keys=True, default=str
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def autoencoder_digest(autoencoder: VideoAutoencoder) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(autoencoder.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().float().cpu().numpy().tobytes())
    return digest.hexdigest()


def select_clip_indices(config: LatentDataConfig, world: ShapesWorld) -> list[int]:
    """World indices of the training clips, in order."""
    indices: list[int] = []
    index = 0
    while len(indices) < config.num_clips:
        clip = world[index]
        keep = not (config.exclude_held_out and is_held_out(clip.attributes))
        if keep and (not config.curated or is_curated(clip)):
            indices.append(index)
        index += 1
    return indices


@torch.no_grad()
def build_latent_dataset(
    config: LatentDataConfig,
    autoencoder: VideoAutoencoder | PixelSpace,
    cache_dir: Path,
    batch_size: int = 64,
) -> LatentDataset:
    """Encode the training clips (or load them from `cache_dir`); pixel space keeps uint8."""
    if isinstance(autoencoder, PixelSpace):
        world = ShapesWorld(config.world, seed=config.seed)
        clips = [world[i] for i in select_clip_indices(config, world)]
        frames = torch.from_numpy(np.stack([clip.frames for clip in clips]))
        return LatentDataset(frames, [clip.caption for clip in clips])
    key = _cache_key(config, autoencoder_digest(autoencoder))
    latents_file = cache_dir / f"latents-{key}.safetensors"
    captions_file = cache_dir / f"captions-{key}.json"
    if latents_file.is_file() and captions_file.is_file():
        return LatentDataset(
            load_file(latents_file)["latents"], json.loads(captions_file.read_text())
        )
    world = ShapesWorld(config.world, seed=config.seed)
    indices = select_clip_indices(config, world)
    chunks: list[Tensor] = []
    captions: list[str] = []
    autoencoder.eval()
    for start in tqdm(range(0, len(indices), batch_size), desc="encode clips", mininterval=2):
        clips = [world[i] for i in indices[start : start + batch_size]]
        video = uint8_to_pixels(np.stack([clip.frames for clip in clips]))
        device = autoencoder.latents_mean.device
        chunks.append(autoencoder.encode(video.to(device)).to("cpu", torch.float16))
        captions.extend(clip.caption for clip in clips)
    dataset = LatentDataset(torch.cat(chunks), captions)
    cache_dir.mkdir(parents=True, exist_ok=True)
    save_file({"latents": dataset.latents.contiguous()}, latents_file)
    captions_file.write_text(json.dumps(captions))
    return dataset

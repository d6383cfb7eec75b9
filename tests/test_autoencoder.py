"""The frame-group autoencoder: k frames stacked as channels into one latent frame."""

from __future__ import annotations

import pytest
import torch

from vpt.models.autoencoder import FrameAutoencoderConfig, VideoAutoencoder, build_frame_autoencoder
from vpt.training.autoencoder import AutoencoderTrainingConfig, _frame_batch
from vpt.world import ShapesWorld, WorldConfig

GROUPED = FrameAutoencoderConfig(
    latent_channels=4,
    block_out_channels=(8, 16),
    layers_per_block=1,
    norm_num_groups=4,
    frames_per_latent=4,
)


def test_groups_of_frames_stack_as_channels_and_unstack_exactly() -> None:
    autoencoder = VideoAutoencoder(build_frame_autoencoder(GROUPED))
    video = torch.arange(2 * 3 * 8 * 2 * 2, dtype=torch.float32).reshape(2, 3, 8, 2, 2)
    stacked = autoencoder._stack_groups(video)
    assert stacked.shape == (4, 12, 2, 2)
    # Group 1 of clip 0 holds frames 4..7, frame-major: channel 3 * j + c is frame 4 + j, colour c.
    torch.testing.assert_close(stacked[1, 3 * 2 + 1], video[0, 1, 6])
    torch.testing.assert_close(autoencoder._unstack_groups(stacked, 2, 2), video)


def test_grouped_autoencoder_compresses_time_and_decodes_every_frame() -> None:
    autoencoder = VideoAutoencoder(build_frame_autoencoder(GROUPED)).eval()
    assert autoencoder.temporal_factor == 4
    assert autoencoder.latent_shape(16, 16, 16) == (4, 4, 8, 8)
    video = torch.rand(2, 3, 16, 16, 16) * 2 - 1
    with torch.no_grad():
        latents = autoencoder.encode(video)
        assert latents.shape == (2, 4, 4, 8, 8)
        assert autoencoder.decode(latents).shape == video.shape
        # Latent frames decode independently: a chunk decodes to the same frames alone.
        torch.testing.assert_close(
            autoencoder.decode(latents[:, :, 1:2]), autoencoder.decode(latents)[:, :, 4:8]
        )
    with pytest.raises(ValueError, match="groups of 4 frames"):
        autoencoder.latent_shape(10, 16, 16)


def test_training_batches_are_runs_of_consecutive_frames() -> None:
    world = ShapesWorld(WorldConfig(frames=8, height=16, width=16, defect_fraction=0.0), seed=3)
    config = AutoencoderTrainingConfig(
        world=world.config, model=GROUPED, clips_per_step=2, frames_per_clip=3
    )
    batch = _frame_batch(world, config, step=0, generator=torch.Generator().manual_seed(0))
    assert batch.shape == (6, 12, 16, 16)
    clip_frames = torch.from_numpy(world[0].frames).permute(0, 3, 1, 2).float() / 127.5 - 1
    first = batch[0].reshape(4, 3, 16, 16)
    starts = [s for s in range(5) if torch.allclose(clip_frames[s : s + 4], first)]
    assert starts, "a training group must be 4 consecutive frames of its clip"

"""The text-to-video generator: text encoder + video autoencoder + flow-matching transformer.

`Generator` is what training stages update, what evaluation samples and what services serve.
Sampling is the pure samplers of `vpt.sampling` driven by this model's velocity function, with
classifier-free guidance; each video's initial noise comes from its own seed, so a (prompt,
seed) pair gives the same video whatever else is in the batch.

Shape legend: B batch, C latent channels, F frames, H/W height/width, L text tokens,
D text width. Pixel videos leave as uint8 numpy arrays `(B, F, H, W, 3)`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from diffusers import WanTransformer3DModel
from torch import Tensor

from vpt.models.autoencoder import PixelSpace, VideoAutoencoder
from vpt.models.text_encoder import TextEncoder, TextEncoderConfig
from vpt.models.transformer import POSITION_CHANNELS, Prediction, predict_velocity
from vpt.sampling import classifier_free_guidance, sample_ode, sampling_sigmas

VelocityFn = Callable[[Tensor, Tensor], Tensor]
TEXT_CACHE_SIZE = 4096


@dataclass(frozen=True)
class SamplerSettings:
    """How a video is sampled from the model (the defaults a checkpoint ships with)."""

    num_steps: int = 30
    """Euler steps from sigma = 1 to 0."""
    shift: float = 3.0
    """Timestep shift of the sampling schedule (Wan uses 3-5 for video)."""
    guidance_scale: float = 4.0
    """Classifier-free guidance scale; 1 disables the unconditional pass."""
    anchor_steps: int = 0
    """Two-pass sampling when > 0: a text-to-video pass of this many steps draws the video whose
    first latent frame then anchors the main pass (`num_steps`, image-to-video from fresh noise
    of the same seed; `vpt.sampling.sample_ode(first_frame=...)`). For models fine-tuned with
    first-frame conditioning (SFT `first_frame_fraction`), which follow the prompt's motion
    better from a given frame than from noise alone. 0 samples in one pass."""

    def validate(self) -> None:
        if not 1 <= self.num_steps <= 1000:
            raise ValueError(f"num_steps must be in 1..1000, got {self.num_steps}")
        if self.shift <= 0:
            raise ValueError(f"shift must be > 0, got {self.shift}")
        if not 0 <= self.guidance_scale <= 50:
            raise ValueError(f"guidance_scale must be in 0..50, got {self.guidance_scale}")
        if not 0 <= self.anchor_steps <= 1000:
            raise ValueError(
                f"anchor_steps must be in 0..1000 (0: one pass), got {self.anchor_steps}"
            )


@dataclass(frozen=True)
class VideoGeometry:
    """The video size a model generates."""

    frames: int = 16
    """Frames per video."""
    height: int = 32
    """Height in pixels."""
    width: int = 32
    """Width in pixels."""
    fps: int = 8
    """Frames per second when written to a file."""


@dataclass(frozen=True)
class GeneratorConfig:
    """Everything besides weights that defines how a generator behaves."""

    geometry: VideoGeometry = field(default_factory=VideoGeometry)
    """Output video size."""
    sampler: SamplerSettings = field(default_factory=SamplerSettings)
    """Default sampling settings."""
    prediction: Prediction = "velocity"
    """What the transformer outputs: the velocity, or the clean sample (x-prediction)."""
    text_encoder: TextEncoderConfig = field(default_factory=TextEncoderConfig)
    """Where the text encoder comes from."""
    negative_prompt: str = ""
    """Prompt of the unconditional branch of classifier-free guidance."""
    use_position_channels: bool = False
    """Append (frame, row, column) coordinate channels to the transformer's input (its
    `in_channels` is then the latent channels + 3); see `vpt.models.transformer`."""


def pixels_to_uint8(video_BCFHW: Tensor) -> np.ndarray:
    """Pixels in [-1, 1] `(B, 3, F, H, W)` to uint8 `(B, F, H, W, 3)`."""
    scaled = ((video_BCFHW.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return scaled.permute(0, 2, 3, 4, 1).cpu().numpy()


def uint8_to_pixels(frames_BFHWC: np.ndarray) -> Tensor:
    """uint8 `(B, F, H, W, 3)` to pixels in [-1, 1] `(B, 3, F, H, W)`."""
    tensor = torch.from_numpy(np.ascontiguousarray(frames_BFHWC))
    return tensor.permute(0, 4, 1, 2, 3).float() / 127.5 - 1.0


class Generator:
    """A text-to-video flow-matching generator on one device."""

    def __init__(
        self,
        transformer: WanTransformer3DModel,
        autoencoder: VideoAutoencoder | PixelSpace,
        text_encoder: TextEncoder,
        config: GeneratorConfig,
    ) -> None:
        self.transformer = transformer
        self.autoencoder = autoencoder
        self.text_encoder = text_encoder
        self.config = config
        self._text_cache: dict[str, Tensor] = {}
        latent_channels = self.latent_shape()[0]
        expected = latent_channels + (POSITION_CHANNELS if config.use_position_channels else 0)
        if transformer.config.in_channels != expected:
            raise ValueError(
                f"the transformer takes {transformer.config.in_channels} input channels but the "
                f"autoencoder gives {latent_channels} latent channels"
                + (
                    f" + {POSITION_CHANNELS} position channels"
                    if config.use_position_channels
                    else ""
                )
                + f" = {expected}; set transformer.in_channels to {expected}"
            )

    @property
    def device(self) -> torch.device:
        return next(self.transformer.parameters()).device

    def latent_shape(self) -> tuple[int, int, int, int]:
        geometry = self.config.geometry
        return self.autoencoder.latent_shape(geometry.frames, geometry.height, geometry.width)

    def encode_prompts(self, prompts: Sequence[str]) -> Tensor:
        """Text embeddings `(B, L, D)`, cached per prompt string (the encoder is frozen)."""
        missing = sorted({p for p in prompts if p not in self._text_cache})
        if missing:
            if len(self._text_cache) + len(missing) > TEXT_CACHE_SIZE:
                self._text_cache = {p: e for p, e in self._text_cache.items() if p in prompts}
            encoded = self.text_encoder.encode(missing)
            self._text_cache.update(zip(missing, encoded, strict=True))
        return torch.stack([self._text_cache[p] for p in prompts]).to(self.device)

    def initial_noise(self, seeds: Sequence[int], draw: int = 0) -> Tensor:
        """Per-video Gaussian noise `(B, C, F, H, W)`, each from its own seed; `draw` k is the
        (k+1)-th draw of that seed's stream (two-pass sampling's second pass uses draw 1)."""
        shape = self.latent_shape()
        noise = []
        for seed in seeds:
            stream = torch.Generator().manual_seed(int(seed))
            for _ in range(draw + 1):
                sample = torch.randn(shape, generator=stream)
            noise.append(sample)
        return torch.stack(noise).to(self.device)

    def velocity(self, latents_BCFHW: Tensor, sigma: Tensor, text_BLD: Tensor) -> Tensor:
        """One network evaluation, always returning a velocity; sigma is one noise level per
        video `(B,)` or, in training, one per transformer frame `(B, T)`."""
        return predict_velocity(
            self.transformer,
            latents_BCFHW,
            sigma,
            text_BLD,
            self.config.prediction,
            self.config.use_position_channels,
        )

    def guided_velocity_fn(
        self, text_BLD: Tensor, negative_BLD: Tensor, guidance_scale: float
    ) -> VelocityFn:
        """A velocity function with classifier-free guidance baked in."""
        if guidance_scale == 1.0:
            return lambda x, sigma: self.velocity(x, sigma, text_BLD)

        def velocity_fn(x: Tensor, sigma: Tensor) -> Tensor:
            both = self.velocity(
                torch.cat([x, x]), torch.cat([sigma, sigma]), torch.cat([text_BLD, negative_BLD])
            )
            v_cond, v_uncond = both.chunk(2)
            return classifier_free_guidance(v_cond, v_uncond, guidance_scale)

        return velocity_fn

    @torch.no_grad()
    def generate_latents(
        self,
        prompts: Sequence[str],
        seeds: Sequence[int],
        sampler: SamplerSettings | None = None,
        on_step: Callable[[int, Tensor], None] | None = None,
    ) -> Tensor:
        """Sample normalised latents for each (prompt, seed).

        `on_step(i, x)` runs after every denoising step; with two-pass sampling
        (`anchor_steps` > 0) i counts on across both passes (the main pass starts at
        `anchor_steps`)."""
        if len(prompts) != len(seeds):
            raise ValueError(f"{len(prompts)} prompts but {len(seeds)} seeds")
        settings = sampler or self.config.sampler
        settings.validate()
        text = self.encode_prompts(prompts)
        negative = self.encode_prompts([self.config.negative_prompt] * len(prompts))
        velocity_fn = self.guided_velocity_fn(text, negative, settings.guidance_scale)
        sigmas = sampling_sigmas(settings.num_steps, settings.shift).to(self.device)
        if not settings.anchor_steps:
            return sample_ode(velocity_fn, self.initial_noise(seeds), sigmas, on_step=on_step)
        anchor_sigmas = sampling_sigmas(settings.anchor_steps, settings.shift).to(self.device)
        first_pass = sample_ode(velocity_fn, self.initial_noise(seeds), anchor_sigmas, on_step)
        offset = settings.anchor_steps

        def main_step(index: int, x: Tensor) -> None:
            if on_step is not None:
                on_step(offset + index, x)

        return sample_ode(
            velocity_fn,
            self.initial_noise(seeds, draw=1),
            sigmas,
            on_step=main_step,
            first_frame=first_pass[:, :, :1],
        )

    @torch.no_grad()
    def decode(self, latents_BCFHW: Tensor) -> np.ndarray:
        """Normalised latents to uint8 video `(B, F, H, W, 3)`."""
        return pixels_to_uint8(self.autoencoder.decode(latents_BCFHW))

    def generate(
        self,
        prompts: Sequence[str],
        seeds: Sequence[int],
        sampler: SamplerSettings | None = None,
        batch_size: int = 16,
    ) -> np.ndarray:
        """uint8 videos `(B, F, H, W, 3)`, one per (prompt, seed)."""
        videos = []
        for start in range(0, len(prompts), batch_size):
            chunk = slice(start, start + batch_size)
            latents = self.generate_latents(prompts[chunk], seeds[chunk], sampler)
            videos.append(self.decode(latents))
        return np.concatenate(videos)

    def eval(self) -> Generator:
        self.transformer.eval()
        self.autoencoder.eval()
        return self

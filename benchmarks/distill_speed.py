"""Sampling cost of the causal few-step student against its bidirectional teacher, side by side.

    python benchmarks/distill_speed.py                                  # shipped teacher
    python benchmarks/distill_speed.py --student runs/distill/checkpoint --repeats 7
    python benchmarks/distill_speed.py --frames 32                      # 2x the training length
    python benchmarks/distill_speed.py --synthetic --teacher-steps 50 --repeats 3

`--synthetic` times a larger random-weight configuration in the proportions of Self-Forcing's
Wan setting (21 transformer frames in 7 chunks of 3, 50 teacher steps with CFG): a 4-layer,
512-wide Wan transformer over 42 pixel-space frames of 32x32 (patch 2x4x4, 1,344 tokens),
where compute rather than per-call overhead dominates.

Same prompt, seed, resolution and frame count for both. The teacher samples with its defaults
(30 Euler steps, CFG: two network evaluations per step, batched) and can show nothing before
its whole video is decoded; the student runs its few steps per chunk without CFG, with one
cache-fill pass between chunks, and yields each chunk as soon as it is decoded.

Counted by hooks on the transformers: network evaluations (per video: a CFG step counts two),
and token evaluations (evaluations x tokens processed), since a student forward sees one chunk.
Timed: wall time of the whole video and time to the first chunk, medians over `--repeats` runs
after one warm-up, on `--threads` torch threads (1 by default). Weights do not change the cost:
without `--student` the teacher's own weights run in the causal student. Writes JSON to
docs/results/.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vpt.ar_generator import ARGenerator, StudentSettings, load_ar_generator  # noqa: E402
from vpt.checkpoint import load_generator  # noqa: E402
from vpt.cli.main import DEFAULT_MODEL  # noqa: E402
from vpt.generator import (  # noqa: E402
    Generator,
    GeneratorConfig,
    SamplerSettings,
    VideoGeometry,
)
from vpt.models.autoencoder import PixelSpace  # noqa: E402
from vpt.models.causal_transformer import CausalWanTransformer  # noqa: E402
from vpt.models.text_encoder import TextEncoder, TextEncoderConfig  # noqa: E402
from vpt.models.transformer import TransformerConfig, build_transformer  # noqa: E402

PROMPTS = [
    "a large red circle moving left slowly over a black background",
    "small green square going up fast",
    "a blue triangle drifting right on a gray background",
]


class EvaluationCounter:
    """Counts forward calls x batch and tokens processed of a transformer."""

    def __init__(self, module: torch.nn.Module, patch: tuple[int, int, int]) -> None:
        self.patch = patch
        self.evaluations = 0
        self.tokens = 0
        module.register_forward_pre_hook(self._count, with_kwargs=True)

    def _count(self, module: torch.nn.Module, args: tuple, kwargs: dict) -> None:
        latents = args[0] if args else kwargs["hidden_states"]
        batch, _, frames, height, width = latents.shape
        patch_t, patch_h, patch_w = self.patch
        self.evaluations += batch
        self.tokens += batch * (frames // patch_t) * (height // patch_h) * (width // patch_w)

    def reset(self) -> None:
        self.evaluations = 0
        self.tokens = 0


def time_teacher(generator: Any, counter: EvaluationCounter, prompt: str, seed: int) -> dict:
    counter.reset()
    started = time.perf_counter()
    video = generator.generate([prompt], [seed])
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "first_chunk_seconds": seconds,  # a bidirectional model shows nothing before the end
        "network_evaluations": counter.evaluations,
        "token_evaluations": counter.tokens,
        "frames": int(video.shape[1]),
    }


def time_student(model: ARGenerator, counter: EvaluationCounter, prompt: str, seed: int) -> dict:
    counter.reset()
    started = time.perf_counter()
    chunks = []
    first = None
    for chunk in model.stream([prompt], [seed]):
        if first is None:
            first = time.perf_counter() - started
        chunks.append(chunk)
    seconds = time.perf_counter() - started
    gaps = [b.seconds - a.seconds for a, b in itertools.pairwise(chunks)]
    return {
        "seconds": seconds,
        "first_chunk_seconds": first,
        "mean_inter_chunk_seconds": statistics.mean(gaps) if gaps else 0.0,
        "network_evaluations": counter.evaluations,
        "token_evaluations": counter.tokens,
        "chunks": len(chunks),
        "frames": sum(int(c.frames.shape[1]) for c in chunks),
    }


def synthetic_teacher(device: str) -> Generator:
    """A random-weight 4-layer, 512-wide Wan teacher over 42 pixel-space frames of 32x32."""
    torch.manual_seed(0)
    transformer = build_transformer(
        TransformerConfig(
            patch_size=(2, 4, 4),
            num_attention_heads=4,
            attention_head_dim=128,
            in_channels=3,
            out_channels=3,
            text_dim=384,
            freq_dim=256,
            ffn_dim=2048,
            num_layers=4,
            rope_max_seq_len=64,
        )
    ).eval()
    config = GeneratorConfig(
        geometry=VideoGeometry(frames=42, height=32, width=32, fps=16),
        sampler=SamplerSettings(num_steps=50, shift=5.0, guidance_scale=5.0),
        text_encoder=TextEncoderConfig(),
    )
    text_encoder = TextEncoder(config.text_encoder, device)
    return Generator(transformer.to(device), PixelSpace().to(device), text_encoder, config)


def time_decoding(teacher: Generator, chunk_frames: int, seed: int) -> dict:
    """The autoencoder's share, which both samplers pay: decode a whole video and one chunk.

    It bounds what any student can gain at this size: its whole video can be no faster than
    decoding it, and its first chunk no sooner than decoding that chunk.
    """
    generator = torch.Generator(device="cpu").manual_seed(seed)
    latents = torch.randn(teacher.latent_shape(), generator=generator).unsqueeze(0)
    latents = latents.to(next(teacher.transformer.parameters()).device)
    patch_t = teacher.transformer.config.patch_size[0]
    chunk_latent_frames = min(chunk_frames * patch_t, latents.shape[2])
    with torch.no_grad():
        started = time.perf_counter()
        teacher.decode(latents)
        whole = time.perf_counter() - started
        started = time.perf_counter()
        teacher.decode(latents[:, :, :chunk_latent_frames])
        chunk = time.perf_counter() - started
    return {"decode_video_seconds": whole, "decode_first_chunk_seconds": chunk}


def medians(runs: list[dict]) -> dict:
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--teacher", default=str(DEFAULT_MODEL))
    parser.add_argument("--student", help="distilled checkpoint (default: teacher weights)")
    parser.add_argument("--steps", type=int, default=4, help="student steps without --student")
    parser.add_argument("--frames", type=int, help="video frames (default: the model's)")
    parser.add_argument("--teacher-steps", type=int, help="teacher steps (default: the model's)")
    parser.add_argument("--chunk-frames", type=int, help="transformer frames per student chunk")
    parser.add_argument("--synthetic", action="store_true", help="larger random-weight config")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu", help="torch device (cuda: untested so far)")
    parser.add_argument("--out", default="docs/results/distill_speed.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    if args.synthetic:
        teacher = synthetic_teacher(args.device)
    else:
        teacher = load_generator(args.teacher, args.device).generator
    if args.teacher_steps:
        sampler = replace(teacher.config.sampler, num_steps=args.teacher_steps)
        teacher.config = replace(teacher.config, sampler=sampler)
    geometry = teacher.config.geometry
    if args.frames:
        geometry = replace(geometry, frames=args.frames)
        teacher.config = replace(teacher.config, geometry=geometry)
    if args.student:
        student_model = load_ar_generator(args.student, args.device, geometry=geometry)
    else:
        settings = StudentSettings(
            chunk_frames=args.chunk_frames or (3 if args.synthetic else 1),
            num_steps=args.steps,
            shift=teacher.config.sampler.shift,
        )
        student = CausalWanTransformer.from_teacher(teacher.transformer, settings.window())
        student_model = ARGenerator(student, teacher, settings)
    patch = tuple(teacher.transformer.config.patch_size)
    teacher_counter = EvaluationCounter(teacher.transformer, patch)  # type: ignore[arg-type]
    student_counter = EvaluationCounter(student_model.student, patch)  # type: ignore[arg-type]

    teacher_runs, student_runs, decode_runs = [], [], []
    for repeat in range(args.repeats + 1):  # the first run of each is a warm-up
        prompt, seed = PROMPTS[repeat % len(PROMPTS)], repeat
        with torch.no_grad():
            teacher_run = time_teacher(teacher, teacher_counter, prompt, seed)
        student_run = time_student(student_model, student_counter, prompt, seed)
        decode_run = time_decoding(teacher, student_model.settings.chunk_frames, seed)
        if repeat > 0:
            teacher_runs.append(teacher_run)
            student_runs.append(student_run)
            decode_runs.append(decode_run)
    teacher_median, student_median = medians(teacher_runs), medians(student_runs)
    decode_median = medians(decode_runs)
    sampler = teacher.config.sampler
    settings = student_model.settings
    result = {
        "teacher": "synthetic" if args.synthetic else args.teacher,
        "student": args.student or f"teacher weights, causal, {settings.num_steps} steps",
        "geometry": {"frames": geometry.frames, "height": geometry.height, "width": geometry.width},
        "latent_shape": list(teacher.latent_shape()),
        "threads": args.threads,
        "device": args.device,
        "repeats": args.repeats,
        "teacher_sampler": {
            "steps": sampler.num_steps,
            "guidance_scale": sampler.guidance_scale,
            "shift": sampler.shift,
        },
        "student_sampler": {
            "steps": settings.num_steps,
            "chunk_frames": settings.chunk_frames,
            "shift": settings.shift,
            "guidance_scale": 1.0,
        },
        "teacher_median": teacher_median,
        "student_median": student_median,
        "decode_median": decode_median,
        # the best any student could do at this size, given the decoder both must run
        "ceilings": {
            "wall_time": teacher_median["seconds"] / decode_median["decode_video_seconds"],
            "first_chunk": teacher_median["seconds"] / decode_median["decode_first_chunk_seconds"],
        },
        "ratios": {
            "network_evaluations": teacher_median["network_evaluations"]
            / student_median["network_evaluations"],
            "token_evaluations": teacher_median["token_evaluations"]
            / student_median["token_evaluations"],
            "wall_time": teacher_median["seconds"] / student_median["seconds"],
            "first_chunk": teacher_median["seconds"] / student_median["first_chunk_seconds"],
        },
    }
    print(json.dumps(result, indent=2))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""Stage 4 of the paper, autoregressive distillation: a bidirectional many-step teacher becomes
a causal few-step student that generates chunk by chunk (`vpt.ar_generator`).

Recipe of Self-Forcing (Huang et al., arXiv 2506.08009) after CausVid (Yin et al., arXiv
2412.07772); the losses are in `vpt.training.dmd`.

1. ODE initialisation: the student (the teacher's weights, block-causal) regresses onto teacher
   ODE trajectories stored at its shift-warped step list. One model, one loss: it runs in the
   shared `train_loop` (progress, metrics, exact resume) in `OUT/ode/`.
2. Self-forcing DMD in `OUT/dmd/`: each iteration the student rolls out chunk by chunk on its
   own outputs (cache filled by clean passes under no_grad), with gradient through one random
   exit step shared by all chunks; every `generator_every`-th iteration the student takes a DMD
   step (teacher with CFG = real score, critic = fake score); every iteration the critic takes a
   flow-matching step on the (detached) rollout. Two AdamW optimisers, EMA of the student,
   progress, JSONL metrics and atomic saves with exact resume, from the shared loop's parts.

The result is a checkpoint (`OUT/checkpoint`, stage "distill", parent = the teacher's version)
holding the student's weights in the teacher's layout and, in its recipe, the `student`
settings (chunking, window, steps) that `vpt.ar_generator.load_ar_generator` needs.
"""

from __future__ import annotations

import functools
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from tqdm import tqdm

from vpt.ar_generator import (
    DISTILL_STAGE,
    ARGenerator,
    StudentSettings,
    rollout_chunks,
)
from vpt.checkpoint import load_generator, save_checkpoint
from vpt.config import config_to_dict
from vpt.eval.attributes import held_out_cases, score_videos
from vpt.generator import Generator, SamplerSettings
from vpt.models.causal_transformer import CausalWanTransformer
from vpt.models.transformer import Prediction, count_parameters, predict_velocity
from vpt.training.dmd import (
    critic_loss,
    dmd_generator_loss,
    draw_score_sigmas,
    ode_regression_loss,
    teacher_trajectories,
)
from vpt.training.ema import EMA
from vpt.training.loop import LoopConfig, OptimConfig, learning_rate, train_loop
from vpt.training.progress import ProgressLog
from vpt.training.run_state import RunState, load_run_state, save_run_state
from vpt.world import all_attribute_combinations, detailed_caption, short_caption
from vpt.world.splits import is_held_out

DEFAULT_TEACHER = "default"
PACKAGED_TEACHER = Path(__file__).resolve().parent.parent / "assets" / "models" / "shapes-default"


@dataclass(frozen=True)
class PromptConfig:
    """The training prompts (no videos: distillation is data-free)."""

    count: int = 2048
    """Distinct prompts, over the training (not held-out) attribute combinations."""
    short_fraction: float = 0.5
    """Fraction of prompts in the short user register (the rest detailed)."""
    seed: int = 0
    """Seed of the prompt list."""


@dataclass(frozen=True)
class ODEInitConfig:
    """Stage 1: regression onto teacher ODE trajectories."""

    trajectories: int = 256
    """Teacher trajectories to store (one prompt and seed each)."""
    teacher_steps: int = 32
    """Teacher Euler steps; a multiple of the student's steps."""
    batch_size: int = 16
    """Trajectories per optimizer step."""
    optim: OptimConfig = field(
        default_factory=lambda: OptimConfig(
            lr=1e-4, warmup_steps=20, decay="constant", grad_clip=1.0, ema_decay=0.0
        )
    )
    """Optimizer of the student."""
    loop: LoopConfig = field(
        default_factory=lambda: LoopConfig(steps=300, log_every=25, save_every=100)
    )
    """Length and cadence (steps 0 skips the stage)."""


@dataclass(frozen=True)
class DMDConfig:
    """Stage 2: self-forcing distribution matching distillation."""

    batch_size: int = 8
    """Rollouts per iteration."""
    generator_every: int = 5
    """The student takes a step every this many iterations; the critic every iteration."""
    guidance_scale: float | None = None
    """CFG scale of the teacher's real score (standard convention); None: the teacher's default."""
    score_shift: float | None = None
    """Shift of the score timestep density; None: the student's shift."""
    sigma_min: float = 0.02
    """Smallest score sigma."""
    sigma_max: float = 0.98
    """Largest score sigma."""
    generator_optim: OptimConfig = field(
        default_factory=lambda: OptimConfig(
            lr=1e-5,
            betas=(0.0, 0.999),
            warmup_steps=0,
            decay="constant",
            grad_clip=10.0,
            ema_decay=0.99,
        )
    )
    """Optimizer and EMA of the student."""
    critic_optim: OptimConfig = field(
        default_factory=lambda: OptimConfig(
            lr=1e-5,
            betas=(0.0, 0.999),
            warmup_steps=0,
            decay="constant",
            grad_clip=10.0,
            ema_decay=0.0,
        )
    )
    """Optimizer of the critic (its ema_decay is ignored)."""
    loop: LoopConfig = field(
        default_factory=lambda: LoopConfig(steps=500, log_every=10, save_every=50)
    )
    """Iterations (critic steps) and cadence (steps 0 skips the stage)."""

    def __post_init__(self) -> None:
        if self.generator_every < 1:
            raise ValueError(f"generator_every must be >= 1, got {self.generator_every}")
        if not 0 < self.sigma_min < self.sigma_max < 1:
            raise ValueError(
                f"need 0 < sigma_min < sigma_max < 1, got {self.sigma_min}, {self.sigma_max}"
            )


@dataclass(frozen=True)
class DistillConfig:
    """A run of `vpt train distill`."""

    teacher: str = DEFAULT_TEACHER
    """Teacher checkpoint folder; "default" is the packaged shapes-default model."""
    student: StudentSettings = field(default_factory=StudentSettings)
    """Chunking, attention window and sampler of the student."""
    prompts: PromptConfig = field(default_factory=PromptConfig)
    """Training prompts."""
    ode: ODEInitConfig = field(default_factory=ODEInitConfig)
    """Stage 1."""
    dmd: DMDConfig = field(default_factory=DMDConfig)
    """Stage 2."""
    eval_prompts: int = 48
    """Held-out prompts scored by the world's detector at the end (0 skips)."""
    version: str | None = None
    """Version of the produced checkpoint (default: derived from its content)."""


def training_prompts(config: PromptConfig) -> list[str]:
    """`config.count` captions of training attribute combinations, in two registers."""
    if config.count < 1:
        raise ValueError(f"prompts.count must be >= 1, got {config.count}")
    combinations = [a for a in all_attribute_combinations() if not is_held_out(a)]
    rng = np.random.default_rng(config.seed)
    prompts = []
    for _ in range(config.count):
        attributes = combinations[int(rng.integers(len(combinations)))]
        is_short = rng.random() < config.short_fraction
        caption = short_caption(attributes, rng) if is_short else detailed_caption(attributes, rng)
        prompts.append(caption.text)
    return prompts


def run_distill(config: DistillConfig, out: Path, device: str = "cpu") -> Path | None:
    """Run (or resume) both stages; return the checkpoint folder, or None if stopped early."""
    out.mkdir(parents=True, exist_ok=True)
    _check_resumable(out / "config.json", config)
    (out / "config.json").write_text(json.dumps(config_to_dict(config), indent=2))
    torch.manual_seed(config.ode.loop.seed)
    teacher_path = PACKAGED_TEACHER if config.teacher == DEFAULT_TEACHER else Path(config.teacher)
    loaded = load_generator(teacher_path, device)
    teacher = loaded.generator
    teacher.transformer.requires_grad_(False)
    teacher.autoencoder.requires_grad_(False)
    if config.student.shift != teacher.config.sampler.shift:
        print(
            f"note: student shift {config.student.shift} differs from the teacher's sampling "
            f"shift {teacher.config.sampler.shift}"
        )
    student = CausalWanTransformer.from_teacher(teacher.transformer, config.student.window())
    student.requires_grad_(True)
    prompts = training_prompts(config.prompts)

    ode_metrics: dict[str, Any] = {}
    if config.ode.loop.steps > 0:
        result = _run_ode_init(config, teacher, student, prompts, out / "ode")
        if result is None:
            return None
        ode_metrics = result
    dmd_metrics: dict[str, Any] = {}
    if config.dmd.loop.steps > 0:
        result = _run_dmd(config, teacher, student, prompts, out / "dmd")
        if result is None:
            return None
        dmd_metrics = result

    model = ARGenerator(student, teacher, config.student)
    metrics: dict[str, Any] = {
        **ode_metrics,
        **dmd_metrics,
        "transformer_parameters": count_parameters(student),
        **_evaluate(model, config.eval_prompts),
    }
    bidirectional = student.to_bidirectional()
    packaged = Generator(bidirectional, teacher.autoencoder, teacher.text_encoder, teacher.config)
    checkpoint = out / "checkpoint"
    save_checkpoint(
        packaged,
        checkpoint,
        version=config.version,
        parent=loaded.manifest.version if loaded.manifest else None,
        stage=DISTILL_STAGE,
        recipe=config_to_dict(config),
        data_seed=config.prompts.seed,
        steps=config.ode.loop.steps + config.dmd.loop.steps,
        metrics=metrics,
        overwrite=True,
    )
    return checkpoint


def _evaluate(model: ARGenerator, count: int) -> dict[str, float]:
    if count <= 0:
        return {}
    cases = held_out_cases(count, seed=9_000)
    videos = model.generate([c.prompt for c in cases], [c.seed for c in cases])
    report = score_videos(videos, cases)
    return {f"eval_{name}": round(value, 4) for name, value in report.summary().items()}


def _check_resumable(saved_file: Path, config: DistillConfig) -> None:
    """Refuse to continue a run folder started with a different recipe (loops may change)."""
    if not saved_file.is_file():
        return
    saved = json.loads(saved_file.read_text())
    current = config_to_dict(config)
    for stage in ("ode", "dmd"):
        for recipe in (saved, current):
            recipe.get(stage, {}).pop("loop", None)
    changed = sorted(key for key in current if saved.get(key) != current[key])
    if changed:
        raise ValueError(
            f"{saved_file.parent} holds a run started with a different recipe (changed: "
            f"{', '.join(changed)}); use a new --out folder, or the original recipe to resume"
        )


# -- stage 1 ------------------------------------------------------------------------------------


def _load_or_make_trajectories(
    config: DistillConfig, teacher: Generator, prompts: list[str], folder: Path
) -> dict[str, Any]:
    path = folder / "trajectories.pt"
    if path.is_file():
        return dict(torch.load(path, weights_only=False))
    folder.mkdir(parents=True, exist_ok=True)
    sampler = SamplerSettings(
        num_steps=config.ode.teacher_steps,
        shift=config.student.shift,
        guidance_scale=teacher.config.sampler.guidance_scale,
    )
    count = config.ode.trajectories
    chosen = [prompts[i % len(prompts)] for i in range(count)]
    seeds = [1_000_000 + i for i in range(count)]
    noisy, clean = [], []
    batch = 16
    for start in tqdm(range(0, count, batch), desc="teacher ODE trajectories", disable=None):
        part = slice(start, start + batch)
        trajectory, end = teacher_trajectories(
            teacher, chosen[part], seeds[part], config.student.sigmas(), sampler
        )
        noisy.append(trajectory.cpu())
        clean.append(end.cpu())
    data = {
        "noisy": torch.cat(noisy),
        "clean": torch.cat(clean),
        "prompts": chosen,
        "sigmas": config.student.sigmas(),
    }
    staging = path.with_suffix(".tmp")
    torch.save(data, staging)
    staging.replace(path)
    return data


def _run_ode_init(
    config: DistillConfig,
    teacher: Generator,
    student: CausalWanTransformer,
    prompts: list[str],
    folder: Path,
) -> dict[str, Any] | None:
    data = _load_or_make_trajectories(config, teacher, prompts, folder)
    noisy, clean, trajectory_prompts = data["noisy"], data["clean"], data["prompts"]
    sigmas = [float(s) for s in data["sigmas"]]
    if sigmas != config.student.sigmas():
        raise ValueError(f"{folder}/trajectories.pt was stored for other student sigmas {sigmas}")
    prediction = teacher.config.prediction
    device = teacher.device

    def compute_loss(step: int, rng: torch.Generator) -> tuple[Tensor, dict[str, float]]:
        index = torch.randint(0, noisy.shape[0], (config.ode.batch_size,), generator=rng)
        text = student.encode_text(teacher.encode_prompts([trajectory_prompts[i] for i in index]))
        loss = ode_regression_loss(
            student,
            text,
            noisy[index].to(device),
            clean[index].to(device),
            sigmas,
            prediction,
            rng,
        )
        return loss, {}

    result = train_loop(
        student,
        compute_loss,
        folder,
        config.ode.optim,
        config.ode.loop,
        desc="distill: ODE init",
        info={"stage": "distill-ode"},
    )
    if not result.finished:
        return None
    if result.ema is not None:
        result.ema.copy_to(student)
    return {
        "ode_final_loss": _last_logged(folder, "loss"),
        "ode_cpu_seconds": round(result.cpu_seconds, 1),
    }


# -- stage 2 ------------------------------------------------------------------------------------


class _StudentAndCritic(nn.Module):
    """The two trained networks of DMD, saved together in the run state."""

    def __init__(self, student: CausalWanTransformer, critic: nn.Module) -> None:
        super().__init__()
        self.student = student
        self.critic = critic


def _run_dmd(
    config: DistillConfig,
    teacher: Generator,
    student: CausalWanTransformer,
    prompts: list[str],
    folder: Path,
) -> dict[str, Any] | None:
    dmd = config.dmd
    folder.mkdir(parents=True, exist_ok=True)
    start_file = folder / "student.safetensors"
    if not start_file.is_file():  # the starting point (after ODE init), kept for the record
        save_file({k: v.contiguous() for k, v in student.state_dict().items()}, start_file)
    critic = student.to_bidirectional()
    critic.load_state_dict(teacher.transformer.state_dict(), strict=True)
    critic.requires_grad_(True)
    pair = _StudentAndCritic(student, critic)
    generator_optimizer = _adamw(student, dmd.generator_optim)
    critic_optimizer = _adamw(critic, dmd.critic_optim)
    ema_decay = dmd.generator_optim.ema_decay
    ema = EMA(student, ema_decay) if ema_decay > 0 else None
    rng = torch.Generator().manual_seed(dmd.loop.seed)
    step, cpu_before = 0, 0.0
    saved = load_run_state(folder)
    if saved is not None:
        pair.load_state_dict(saved.model, strict=True)
        generator_optimizer.load_state_dict(saved.optimizer["generator"])
        critic_optimizer.load_state_dict(saved.optimizer["critic"])
        if ema is not None:
            ema.load_state_dict(saved.ema)
        rng.set_state(saved.generator_state)
        step, cpu_before = saved.step, float(saved.info.get("cpu_seconds", 0.0))
    else:
        student.load_state_dict(load_file(start_file), strict=True)

    guidance = (
        dmd.guidance_scale
        if dmd.guidance_scale is not None
        else teacher.config.sampler.guidance_scale
    )
    score_shift = dmd.score_shift if dmd.score_shift is not None else config.student.shift
    prediction = teacher.config.prediction
    latent_shape = teacher.latent_shape()
    negative_prompt = teacher.config.negative_prompt
    progress = ProgressLog(folder, dmd.loop.steps, step, "distill: self-forcing DMD")
    cpu_start = time.process_time()
    stop_at = step + dmd.loop.stop_after if dmd.loop.stop_after else dmd.loop.steps
    metrics: dict[str, float] = {}
    generator_metrics: dict[str, float] = {}  # from the latest student step, logged with each line

    def cpu_seconds() -> float:
        return cpu_before + time.process_time() - cpu_start

    def save(at: int) -> None:
        save_run_state(
            folder,
            RunState(
                step=at,
                model={k: v.detach().clone() for k, v in pair.state_dict().items()},
                ema=ema.state_dict() if ema else {},
                optimizer={
                    "generator": generator_optimizer.state_dict(),
                    "critic": critic_optimizer.state_dict(),
                },
                generator_state=rng.get_state(),
                info={"cpu_seconds": cpu_seconds(), "stage": "distill-dmd"},
            ),
        )

    def noise_fn(shape: tuple[int, ...]) -> Tensor:
        return torch.randn(shape, generator=rng).to(teacher.device)

    def score_sigmas() -> Tensor:
        bounds = (dmd.sigma_min, dmd.sigma_max)
        return draw_score_sigmas(dmd.batch_size, score_shift, bounds, rng).to(teacher.device)

    pair.train()
    try:
        while step < min(dmd.loop.steps, stop_at):
            metrics = {}
            index = torch.randint(0, len(prompts), (dmd.batch_size,), generator=rng)
            text_BLD = teacher.encode_prompts([prompts[i] for i in index])
            negative_BLD = teacher.encode_prompts([negative_prompt] * dmd.batch_size)
            exit_step = int(torch.randint(0, config.student.num_steps, (1,), generator=rng))
            is_generator_step = step % dmd.generator_every == 0
            with torch.set_grad_enabled(is_generator_step):
                text = student.encode_text(text_BLD)
                chunks = rollout_chunks(
                    student, text, noise_fn, latent_shape, config.student, prediction, exit_step
                )
                video = torch.cat([chunk.latents for chunk in chunks], dim=2)
            if is_generator_step:
                for group in generator_optimizer.param_groups:
                    group["lr"] = learning_rate(dmd.generator_optim, step, dmd.loop.steps)
                real = teacher.guided_velocity_fn(text_BLD, negative_BLD, guidance)

                fake = functools.partial(
                    _critic_velocity, critic, text_BLD=text_BLD, prediction=prediction
                )
                outputs = dmd_generator_loss(
                    video, real, fake, score_sigmas(), noise_fn(tuple(video.shape))
                )
                generator_optimizer.zero_grad(set_to_none=True)
                outputs.loss.backward()
                grad_norm = _clip(student, dmd.generator_optim.grad_clip)
                generator_optimizer.step()
                if ema is not None:
                    ema.update(student)
                generator_metrics = {
                    "generator_step": step,
                    "generator_grad_norm": grad_norm,
                    "dmd_direction_norm": outputs.direction_norm,
                    "dmd_sigma_mean": outputs.sigma_mean,
                }
            for group in critic_optimizer.param_groups:
                group["lr"] = learning_rate(dmd.critic_optim, step, dmd.loop.steps)
            loss = critic_loss(
                critic,
                video.detach(),
                text_BLD,
                score_sigmas(),
                noise_fn(tuple(video.shape)),
                prediction,
            )
            if not torch.isfinite(loss):
                raise FloatingPointError(f"critic loss became {loss.item()} at step {step}")
            critic_optimizer.zero_grad(set_to_none=True)
            loss.backward()
            metrics["critic_grad_norm"] = _clip(critic, dmd.critic_optim.grad_clip)
            critic_optimizer.step()
            step += 1
            metrics = {
                "critic_loss": float(loss.detach()),
                "exit_step": exit_step,
                **metrics,
                **generator_metrics,
            }
            metrics["video_std"] = float(video.detach().std())
            progress.advance(1, critic_loss=metrics["critic_loss"])
            if step % dmd.loop.log_every == 0 or step == dmd.loop.steps:
                progress.log(step, cpu_seconds=round(cpu_seconds(), 2), **metrics)
            if step % dmd.loop.save_every == 0 or step == dmd.loop.steps:
                save(step)
    finally:
        progress.close()
    if step < dmd.loop.steps:
        if step % dmd.loop.save_every:
            save(step)
        return None
    if ema is not None:
        ema.copy_to(student)
    return {
        "dmd_iterations": step,
        "dmd_generator_updates": -(-step // dmd.generator_every),
        "dmd_final_critic_loss": _last_logged(folder, "critic_loss"),
        "dmd_cpu_seconds": round(cpu_seconds(), 1),
    }


def _critic_velocity(
    critic: nn.Module, x: Tensor, sigma: Tensor, *, text_BLD: Tensor, prediction: Prediction
) -> Tensor:
    return predict_velocity(critic, x, sigma, text_BLD, prediction)


def _last_logged(folder: Path, key: str) -> float | None:
    """The latest value of `key` in a stage's metrics.jsonl (also after a resumed, finished run)."""
    path = folder / "metrics.jsonl"
    if not path.is_file():
        return None
    values = [json.loads(line).get(key) for line in path.read_text().splitlines() if line.strip()]
    present = [value for value in values if value is not None]
    return float(present[-1]) if present else None


def _adamw(model: nn.Module, optim: OptimConfig) -> torch.optim.AdamW:
    return torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad],
        lr=optim.lr,
        betas=optim.betas,
        weight_decay=optim.weight_decay,
    )


def _clip(model: nn.Module, max_norm: float) -> float:
    parameters = [p for p in model.parameters() if p.grad is not None]
    if not parameters:
        return 0.0
    if max_norm <= 0:
        max_norm = float("inf")
    return float(torch.nn.utils.clip_grad_norm_(parameters, max_norm))

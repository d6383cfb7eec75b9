"""The shipped distilled student: traceable to its teacher, streams the right video."""

from __future__ import annotations

import numpy as np

from vpt.ar_generator import load_ar_generator
from vpt.checkpoint import verify_checkpoint
from vpt.cli.main import DEFAULT_MODEL
from vpt.training.distill import PACKAGED_TEACHER

SHIPPED_STUDENT = DEFAULT_MODEL.parent / "shapes-distill"
DISTILLED_FROM = "shapes-sft-v1"
"""The student's teacher: the default model before `shapes-sft-v2` (docs/distillation.md); it
shares the shipped default's autoencoder, which decodes the student's chunks."""


def test_shipped_student_is_verified_and_its_parent_is_its_teacher() -> None:
    manifest = verify_checkpoint(SHIPPED_STUDENT)
    teacher = verify_checkpoint(PACKAGED_TEACHER)
    assert manifest.stage == "distill" and manifest.parent == DISTILLED_FROM
    assert manifest.recipe["student"]["num_steps"] == 4
    assert manifest.metrics["dmd_generator_updates"] > 0
    vae = "vae/diffusion_pytorch_model.safetensors"
    assert manifest.files[vae] == teacher.files[vae]


def test_shipped_student_streams_four_chunks_of_a_red_object_on_black() -> None:
    model = load_ar_generator(SHIPPED_STUDENT)
    prompt = "a large red square moving right slowly over a black background"
    chunks = list(model.stream([prompt], [1]))
    assert [c.first_frame for c in chunks] == [0, 4, 8, 12]
    assert [c.network_evaluations for c in chunks] == [4, 9, 14, 19]
    video = np.concatenate([c.frames for c in chunks], axis=1)[0]
    assert video.shape == (16, 32, 32, 3)
    assert np.median(video) < 60  # a dark background
    pixels = video.reshape(-1, 3)
    bright = pixels[pixels.sum(1) > 200]
    assert len(bright) > 0 and np.median(bright[:, 0]) > 2 * np.median(bright[:, 1])

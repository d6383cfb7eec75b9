"""Quality of a distilled causal student against its teacher, on the held-out judge.

    python benchmarks/distill_quality.py --student runs/distill/checkpoint
    python benchmarks/distill_quality.py --student runs/distill/checkpoint --limit 40 --seeds 2

Measured, on the same (prompt, seed) pairs for both models:
- GSB of the student against the teacher (`vpt.eval`'s judge: visual, motion, text, overall),
  with the paired bootstrap 95% CI, on the eval prompt set `shapes_eval_v1`;
- attribute accuracy on held-out prompts (the world's analytic detector);
- temporal coherence at chunk boundaries: the mean absolute pixel change between the last frame
  of a chunk and the first of the next, against the mean change between consecutive frames
  inside chunks (a ratio near 1 means no visible seams; "block jumps" show as > 1);
- drift on rollouts twice the training length: attribute accuracy of the first and the second
  half of each 2x video (the teacher's geometry is the training length).
Writes docs/results/distill_quality.json and a sheet of student | teacher pairs (PNG).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vpt.ar_generator import ARGenerator, load_ar_generator  # noqa: E402
from vpt.checkpoint import load_generator  # noqa: E402
from vpt.eval.attributes import held_out_cases, score_videos  # noqa: E402
from vpt.eval.comparison import compare_systems, save_pair_sheet  # noqa: E402
from vpt.eval.prompt_set import DEFAULT_PROMPT_SET, load_prompt_set  # noqa: E402
from vpt.eval.systems import CheckpointSystem  # noqa: E402


@dataclass
class StudentSystem:
    """The student as an evaluation `System`."""

    model: ARGenerator
    name: str

    def generate(self, prompts: Sequence[str], seeds: Sequence[int]) -> np.ndarray:
        return self.model.generate(list(prompts), [int(s) for s in seeds])


def seam_ratio(videos: np.ndarray, chunk: int) -> dict[str, float]:
    """Mean |frame change| across chunk boundaries and inside chunks, and their ratio."""
    change = np.abs(np.diff(videos.astype(np.float32), axis=1)).mean(axis=(0, 2, 3, 4))
    at_boundary = [i for i in range(len(change)) if (i + 1) % chunk == 0]
    inside = [i for i in range(len(change)) if (i + 1) % chunk != 0]
    across, within = float(change[at_boundary].mean()), float(change[inside].mean())
    return {"boundary_change": across, "within_change": within, "ratio": across / within}


def attribute_summary(videos: np.ndarray, cases: Sequence) -> dict[str, float]:
    return {k: round(v, 4) for k, v in score_videos(videos, cases).summary().items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--student", required=True, help="distilled checkpoint folder")
    parser.add_argument("--teacher", help="teacher checkpoint (default: the student's parent)")
    parser.add_argument("--limit", type=int, default=40, help="GSB prompts (of the eval set)")
    parser.add_argument("--seeds", type=int, default=2, help="GSB seeds per prompt")
    parser.add_argument("--prompts", type=int, default=96, help="held-out accuracy prompts")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="docs/results/distill_quality.json")
    parser.add_argument("--sheet", default="docs/images/distill_pairs.png", help="A | B pairs")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    student = load_ar_generator(args.student)
    teacher_path = args.teacher or str(ROOT / "vpt" / "assets" / "models" / "shapes-default")
    teacher = load_generator(teacher_path).generator
    prompt_set = load_prompt_set(DEFAULT_PROMPT_SET)
    prompts = prompt_set.prompts[: args.limit]
    comparison = compare_systems(
        StudentSystem(student, args.student),
        CheckpointSystem(teacher, name=teacher_path),
        prompts,
        list(range(args.seeds)),
    )
    report = comparison.report.to_dict()
    save_pair_sheet(comparison, args.sheet, pairs=8)
    print(comparison.report.to_markdown())

    cases = held_out_cases(args.prompts, seed=2026)
    case_prompts, case_seeds = [c.prompt for c in cases], [c.seed for c in cases]
    student_videos = student.generate(case_prompts, case_seeds)
    teacher_videos = teacher.generate(case_prompts, case_seeds)
    frames = student.config.geometry.frames
    chunk = student.settings.chunk_frames * student.student.temporal_patch
    long_videos = student.generate(case_prompts, case_seeds, num_frames=2 * frames)
    result = {
        "student": args.student,
        "teacher": teacher_path,
        "gsb_student_vs_teacher": report,
        "attributes": {
            "prompts": len(cases),
            "student": attribute_summary(student_videos, cases),
            "teacher": attribute_summary(teacher_videos, cases),
        },
        "chunk_seams": {
            "chunk_frames": chunk,
            "student": seam_ratio(student_videos, chunk),
            "teacher": seam_ratio(teacher_videos, chunk),
        },
        "drift_2x_length": {
            "frames": 2 * frames,
            "first_half": attribute_summary(long_videos[:, :frames], cases),
            "second_half": attribute_summary(long_videos[:, frames:], cases),
            "pixel_std_first_half": float(long_videos[:, :frames].std()),
            "pixel_std_second_half": float(long_videos[:, frames:].std()),
        },
    }
    print(json.dumps({k: v for k, v in result.items() if k != "gsb_student_vs_teacher"}, indent=2))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""Reward scoring throughput on one CPU thread: videos/s per reward, ONNX Runtime vs torch.

Each learned reward scores the same batch of 16x32x32 world videos with both in-process
backends; every figure is the median of `--repeats` timed runs after one warm-up run. Text
alignment runs with its prompt embeddings cached (a GRPO group repeats one prompt); embedding a
new prompt with MiniLM is timed separately. The structural reward (analytic detector) has one
backend.

    python benchmarks/reward_throughput.py --json docs/results/reward_throughput.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import torch

from vpt.rewards import Reward
from vpt.rewards.learned import OnnxReward, TorchReward, shared_prompt_embedder
from vpt.rewards.model_files import load_reward_model, resolve_models_dir
from vpt.rewards.structural import StructuralReward
from vpt.world import ShapesWorld, WorldConfig

LEARNED = ("visual_quality", "motion_quality", "text_alignment")


def median_seconds(run: Callable[[], object], repeats: int) -> float:
    """Median wall time of `repeats` calls after one warm-up call."""
    run()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def videos_per_second(
    reward: Reward, videos: np.ndarray, prompts: list[str], repeats: int
) -> float:
    """Median throughput of `reward.score(videos, prompts)`."""
    return round(len(prompts) / median_seconds(lambda: reward.score(videos, prompts), repeats), 1)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 32], help="batch sizes")
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per figure")
    parser.add_argument("--models", default="packaged", help="reward models folder")
    parser.add_argument("--json", type=Path, default=None, help="where to write the figures")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    os.environ["VPT_THREADS"] = "1"
    clips = ShapesWorld(WorldConfig(), seed=21).batch(range(max(args.batches)))
    embedder = shared_prompt_embedder()
    folder = resolve_models_dir(args.models)
    rows: list[dict[str, Any]] = []
    for name in LEARNED:
        loaded = load_reward_model(folder / name)
        backends: dict[str, Reward] = {
            "torch": TorchReward(loaded, embedder),
            "onnx": OnnxReward.from_loaded(loaded, embedder),
        }
        for batch in args.batches:
            videos, prompts = clips.frames[:batch], list(clips.captions[:batch])
            row: dict[str, Any] = {"reward": name, "batch": batch}
            for backend, reward in backends.items():
                row[f"{backend}_videos_per_s"] = videos_per_second(
                    reward, videos, prompts, args.repeats
                )
            row["onnx_speedup"] = round(row["onnx_videos_per_s"] / row["torch_videos_per_s"], 2)
            rows.append(row)
    structural = StructuralReward()
    for batch in args.batches:
        videos, prompts = clips.frames[:batch], list(clips.captions[:batch])
        throughput = videos_per_second(structural, videos, prompts, args.repeats)
        rows.append({"reward": "structural", "batch": batch, "videos_per_s": throughput})
    fresh = [f"a small red circle moving left number {i}" for i in range(args.repeats * 8)]
    chunks = iter([fresh[i : i + 8] for i in range(0, len(fresh), 8)])
    embed_seconds = median_seconds(lambda: embedder.embed(next(chunks)), args.repeats - 1)
    results = {
        "threads": 1,
        "repeats": args.repeats,
        "geometry": "16 frames x 32 x 32",
        "machine": platform.processor() or platform.machine(),
        "rows": rows,
        "new_prompt_embedding_ms": round(1000 * embed_seconds / 8, 2),
    }
    print(f"{'reward':<16}{'batch':>6}{'torch v/s':>12}{'onnx v/s':>12}{'speedup':>9}")
    for row in rows:
        if "onnx_videos_per_s" in row:
            print(
                f"{row['reward']:<16}{row['batch']:>6}{row['torch_videos_per_s']:>12}"
                f"{row['onnx_videos_per_s']:>12}{row['onnx_speedup']:>9}"
            )
        else:
            print(f"{row['reward']:<16}{row['batch']:>6}{row['videos_per_s']:>12} (detector)")
    print(f"new prompt embedding (MiniLM): {results['new_prompt_embedding_ms']} ms per prompt")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()

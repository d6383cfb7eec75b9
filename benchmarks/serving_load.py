"""Serving load benchmark: concurrent streaming clients against the gRPC service, compared with
calling the generator in-process on the same machine.

Runs the real server (ServingApp: auth, validation, admission, worker threads, artifact MP4 +
sha256, SQLite event log, records) on 127.0.0.1 with one generation worker, and asyncio SDK
clients over gRPC. Reports throughput, time to first chunk (TTFC) and duration p50/p99 measured
by the clients, and the server's overhead against the same generations run in-process
(`BidirectionalStreamer`, no server). The machine is shared, so the in-process and served
batches are interleaved in rounds (both see the same load) and each overhead is the median over
rounds of a per-round ratio:

- `overhead_latency`: median client-side duration (call start to the completed message) over
  the median in-process time, - 1;
- `overhead_video_received`: the same with the client-side time until every frame arrived (TTFC:
  requests take the whole video as one chunk);
- `overhead_throughput`: wall time of the served batch over the in-process time of as many
  videos, - 1;
- `overhead_cpu`: CPU seconds of the served batch (server threads, SDK clients and the ffmpeg
  children that encode artifacts) over the CPU seconds of the in-process batch, - 1 (also
  inflated by contention on a busy machine: compare the per-round values).

    python benchmarks/serving_load.py --requests 8 --rounds 4 --concurrency 1 4 \
        --json docs/results/serving_load.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch

from serving.client import AsyncVideoClient
from serving.config import SHIPPED_MODEL, ServeConfig, ServerConfig
from serving.events.sqlite_bus import SqliteEventBus
from serving.models import ModelRegistry
from serving.server import ServingApp
from vpt.streaming import StreamRequest

PROMPTS = ["red circle moving left", "blue square moving up fast", "green triangle moving right"]
KEY = "bench-key"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def cpu_seconds() -> float:
    """CPU time of this process (all threads) and of its finished children (ffmpeg)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def in_process(registry: ModelRegistry, count: int) -> tuple[list[float], float]:
    """Seconds per video when calling the streaming generator directly (no server), and the
    CPU seconds the batch took."""
    model = registry.active
    durations = []
    cpu_before = cpu_seconds()
    for index in range(count):
        request = StreamRequest(
            PROMPTS[index % len(PROMPTS)], index, model.streamer.default_sampler
        )
        started = time.perf_counter()
        for _ in model.streamer.stream(request, lambda: False):
            pass
        durations.append(time.perf_counter() - started)
    return durations, cpu_seconds() - cpu_before


@dataclass
class Measurement:
    """Client-side timings of one batch of served generations."""

    ttfc: list[float]
    durations: list[float]
    wall: float
    cpu: float
    """CPU seconds of the whole process (server, clients) and its ffmpeg children."""


async def served(target: str, count: int, concurrency: int) -> Measurement:
    """Run `count` generations with `concurrency` clients; client-side timings."""
    measurement = Measurement([], [], 0.0, 0.0)
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(count):
        queue.put_nowait(index)

    async def worker() -> None:
        async with AsyncVideoClient(target, api_key=KEY, timeout=600) as api:
            while not queue.empty():
                index = queue.get_nowait()
                result = await api.generate(PROMPTS[index % len(PROMPTS)], seed=index)
                measurement.ttfc.append(result.time_to_first_chunk_seconds)
                measurement.durations.append(result.duration_seconds)

    started = time.perf_counter()
    cpu_before = cpu_seconds()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    measurement.wall = time.perf_counter() - started
    measurement.cpu = cpu_seconds() - cpu_before
    return measurement


def server_stage_means(app: ServingApp) -> dict[str, float]:
    """Mean seconds per stage from the server's own histograms (all batches and warm-ups)."""
    sums: dict[str, float] = {}
    counts: dict[str, float] = {}
    for metric in app.metrics.stage_duration.collect():
        for sample in metric.samples:
            stage = sample.labels.get("stage", "")
            if sample.name.endswith("_sum"):
                sums[stage] = sample.value
            elif sample.name.endswith("_count"):
                counts[stage] = sample.value
    return {stage: round(sums[stage] / counts[stage], 4) for stage in sums if counts.get(stage)}


def summarise(values: list[float]) -> dict[str, float]:
    return {
        "p50_seconds": round(percentile(values, 50), 4),
        "p99_seconds": round(percentile(values, 99), 4),
    }


async def run(args: argparse.Namespace) -> dict[str, object]:
    """Interleave rounds of in-process and served batches so both see the same machine load."""
    torch.set_num_threads(1)
    registry = ModelRegistry("shapes")
    registry.stage(args.model)
    state = tempfile.mkdtemp(prefix="vpt-serving-bench-")
    config = ServeConfig(
        server=ServerConfig(port=0, admin_port=0, metrics_port=-1), state_dir=state
    )
    config = replace(config, admission=replace(config.admission, max_queue=64))
    app = ServingApp(config, registry, SqliteEventBus(Path(state) / "events.sqlite"), keys=[KEY])
    await app.start()
    target = f"127.0.0.1:{app.port}"
    baseline: list[list[float]] = []
    baseline_cpu: list[float] = []
    batches: dict[int, list[Measurement]] = {c: [] for c in args.concurrency}
    try:
        in_process(registry, 2)  # warm-up (text cache, allocator)
        await served(target, 2, 1)
        for round_index in range(args.rounds):
            durations, cpu = await asyncio.to_thread(in_process, registry, args.requests)
            baseline.append(durations)
            baseline_cpu.append(cpu)
            for concurrency in args.concurrency:
                batches[concurrency].append(await served(target, args.requests, concurrency))
            print(f"round {round_index + 1}/{args.rounds} done", file=sys.stderr)
    finally:
        await app.stop(5)
    stages = server_stage_means(app)
    pooled = [d for batch in baseline for d in batch]
    runs = []
    for concurrency, measurements in batches.items():
        wall_ratios = [m.wall / sum(b) - 1 for m, b in zip(measurements, baseline, strict=True)]
        cpu_ratios = [m.cpu / c - 1 for m, c in zip(measurements, baseline_cpu, strict=True)]
        latency_ratios = [
            statistics.median(m.durations) / statistics.median(b) - 1
            for m, b in zip(measurements, baseline, strict=True)
        ]
        received_ratios = [
            statistics.median(m.ttfc) / statistics.median(b) - 1
            for m, b in zip(measurements, baseline, strict=True)
        ]
        requests = sum(len(m.durations) for m in measurements)
        single = concurrency == 1  # with more clients than workers, latency includes queueing
        runs.append(
            {
                "concurrency": concurrency,
                "requests": requests,
                "throughput_videos_per_second": round(
                    requests / sum(m.wall for m in measurements), 4
                ),
                "ttfc": summarise([t for m in measurements for t in m.ttfc]),
                "duration": summarise([d for m in measurements for d in m.durations]),
                "overhead_throughput_median": round(statistics.median(wall_ratios), 4),
                "overhead_latency_median": (
                    round(statistics.median(latency_ratios), 4) if single else None
                ),
                "overhead_video_received_median": (
                    round(statistics.median(received_ratios), 4) if single else None
                ),
                "overhead_cpu_median": round(statistics.median(cpu_ratios), 4),
                "cpu_seconds_per_video": round(sum(m.cpu for m in measurements) / requests, 4),
                "overhead_throughput_per_round": [round(r, 4) for r in wall_ratios],
                "overhead_cpu_per_round": [round(r, 4) for r in cpu_ratios],
            }
        )
    geometry = registry.active.geometry
    return {
        "model": registry.active.identity.version,
        "video": f"{geometry.frames}x{geometry.height}x{geometry.width}",
        "num_steps": registry.active.streamer.default_sampler.num_steps,
        "device": "cpu",
        "torch_threads": 1,
        "generation_workers": config.admission.max_concurrent,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared with other jobs)",
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "rounds": args.rounds,
        "in_process": {
            "requests": len(pooled),
            "duration": summarise(pooled),
            "throughput_videos_per_second": round(len(pooled) / sum(pooled), 4),
            "cpu_seconds_per_video": round(sum(baseline_cpu) / len(pooled), 4),
        },
        "served": runs,
        "server_stage_mean_seconds": stages,
        "definitions": {
            "overhead_cpu": "CPU seconds of the served batch (server, SDK clients, ffmpeg) / "
            "CPU seconds of the in-process batch of the same size in the same round, - 1",
            "overhead_throughput": "served batch wall time / in-process time of the same number "
            "of videos in the same round, - 1",
            "overhead_latency": "median client duration (call start to the completed message, "
            "sent after the MP4 artifact is stored and the GenerationCompleted event written) / "
            "median in-process time, - 1",
            "latency overheads": "reported at concurrency 1 only (more clients than workers "
            "queue, which is not overhead)",
            "overhead_video_received": "median client TTFC (the whole video is one chunk, so "
            "the client then holds every frame) / median in-process time, - 1",
        },
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default=str(SHIPPED_MODEL), help="checkpoint folder")
    parser.add_argument("--requests", type=int, default=8, help="generations per batch")
    parser.add_argument("--rounds", type=int, default=4, help="interleaved measurement rounds")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--json", type=Path, default=None, help="where to write the figures")
    args = parser.parse_args(argv)
    if args.requests < 2 or args.rounds < 1 or min(args.concurrency) < 1:
        parser.error("--requests must be >= 2, --rounds >= 1 and --concurrency values >= 1")
    results = asyncio.run(run(args))
    print(json.dumps(results, indent=2))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""Prometheus metrics of the serving process (prefix `vpt_`, base units, low-cardinality labels).

No label ever holds a prompt, generation id or user: every label below has a small fixed set of
values (outcome, reason, stage, topic, result) except `vpt_model_info`, which has one series
per resident model version.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

DURATION_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


@dataclass
class ServingMetrics:
    """All serving metrics, registered in their own registry (one per server instance)."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        registry = self.registry
        self.generations = Counter(
            "vpt_generations",
            "Generations by outcome (ok, failed, cancelled, deadline).",
            ["outcome"],
            registry=registry,
        )
        self.rejections = Counter(
            "vpt_rejections",
            "Requests refused before generating, by reason.",
            ["reason"],
            registry=registry,
        )
        self.time_to_first_chunk = Histogram(
            "vpt_time_to_first_chunk_seconds",
            "From request arrival to the first video chunk sent.",
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.generation_duration = Histogram(
            "vpt_generation_duration_seconds",
            "From request arrival to the completed message.",
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.queue_wait = Histogram(
            "vpt_queue_wait_seconds",
            "Time an admitted generation waited for a worker.",
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.queue_depth = Gauge(
            "vpt_queue_depth", "Admitted generations waiting for a worker.", registry=registry
        )
        self.in_flight = Gauge(
            "vpt_generations_in_flight", "Generations running on a worker.", registry=registry
        )
        self.frames = Counter(
            "vpt_frames_generated", "Video frames sent to clients.", registry=registry
        )
        self.stage_duration = Histogram(
            "vpt_stage_duration_seconds",
            "Time per pipeline stage (enhance, denoise, decode, encode, store).",
            ["stage"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.model_info = Gauge(
            "vpt_model_info",
            "1 for the active model version, 0 for other resident ones.",
            ["model", "version", "digest"],
            registry=registry,
        )
        self.swaps = Counter(
            "vpt_model_swaps",
            "Model staging/activation/rollback attempts by operation and result.",
            ["operation", "result"],
            registry=registry,
        )
        self.events = Counter(
            "vpt_events_produced",
            "Events written to the bus by topic and result.",
            ["topic", "result"],
            registry=registry,
        )
        self.enhancement = Counter(
            "vpt_prompt_enhancements",
            "Prompt-enhancer calls by result (enhanced, unchanged, rejected, timeout, error, "
            "empty, disabled).",
            ["result"],
            registry=registry,
        )

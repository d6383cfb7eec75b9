"""The event-bus interface shared by the embedded log and Kafka.

Semantics both adapters guarantee (checked by the shared contract tests):
- `publish` returns only after the record is durably written (fsynced SQLite commit; Kafka
  acks=all) and raises `EventBusError` otherwise; records with the same key keep their order.
- A consumer group reads every record of its topics once it commits; a new consumer of the same
  group resumes after the last commit; another group reads everything from the start.
- Values are opaque bytes (serialised `vpt.events.v1.Event`); keys are strings (the generation
  id, or the model name for model-version events).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


class EventBusError(RuntimeError):
    """A record could not be durably written or read."""


@dataclass(frozen=True)
class Topics:
    """The topic names for one deployment."""

    prefix: str = "vpt"

    @property
    def generations(self) -> str:
        return f"{self.prefix}.generations.v1"

    @property
    def feedback(self) -> str:
        return f"{self.prefix}.feedback.v1"

    @property
    def model_versions(self) -> str:
        return f"{self.prefix}.model-versions.v1"

    def all(self) -> list[str]:
        return [self.generations, self.feedback, self.model_versions]


@dataclass(frozen=True)
class Record:
    """One record read back from a topic."""

    topic: str
    partition: int
    offset: int
    key: str
    value: bytes


class EventBus(Protocol):
    """Durable publishing."""

    def create_topics(self, topics: Sequence[str]) -> None:
        """Make sure the topics exist (idempotent)."""
        ...

    def publish(self, topic: str, key: str, value: bytes) -> None:
        """Write one record durably, or raise EventBusError."""
        ...

    def consumer(self, group: str, topics: Sequence[str]) -> EventConsumer:
        """A consumer of `topics` in consumer group `group`."""
        ...

    def close(self) -> None: ...


class EventConsumer(Protocol):
    """Reads records and commits the group's position."""

    def poll(self, timeout_seconds: float, max_records: int = 500) -> list[Record]:
        """Records after the current position (possibly none after the timeout)."""
        ...

    def commit(self) -> None:
        """Store the position after the last polled records for the group."""
        ...

    def close(self) -> None: ...

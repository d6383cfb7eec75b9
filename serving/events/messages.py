"""Building `vpt.events.v1.Event` records and publishing them with metrics.

Event ids are deterministic (uuid5 of what the event is about), so a retried publish of the
same fact carries the same id and consumers deduplicate it.
"""

from __future__ import annotations

import logging
import time
import uuid

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from serving.events.bus import EventBus, EventBusError, Topics
from serving.metrics import ServingMetrics
from serving.protos import events_pb, types_pb

PRODUCER = "vpt-serving"
_NAMESPACE = uuid.UUID("5b7e3c1a-93f4-4c1e-9a59-6f2f3b0c9d10")
log = logging.getLogger(__name__)


def event_id(*parts: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, "/".join(parts)))


def duration(seconds: float) -> Duration:
    value = Duration()
    value.FromNanoseconds(int(max(seconds, 0.0) * 1e9))
    return value


def new_event(identity: str) -> events_pb.Event:
    occurred = Timestamp()
    occurred.FromNanoseconds(time.time_ns())
    return events_pb.Event(event_id=identity, occurred_at=occurred, producer=PRODUCER)


class EventPublisher:
    """Writes serving events to the bus (blocking; call from a worker thread)."""

    def __init__(self, bus: EventBus, topics: Topics, metrics: ServingMetrics) -> None:
        self.bus = bus
        self.topics = topics
        self.metrics = metrics

    def _publish(self, topic: str, key: str, event: events_pb.Event) -> None:
        try:
            self.bus.publish(topic, key, event.SerializeToString())
        except EventBusError:
            self.metrics.events.labels(topic, "error").inc()
            raise
        self.metrics.events.labels(topic, "ok").inc()

    def generation_completed(self, payload: events_pb.GenerationCompleted) -> str:
        identity = event_id("generation", payload.generation_id)
        event = new_event(identity)
        event.generation_completed.CopyFrom(payload)
        self._publish(self.topics.generations, payload.generation_id, event)
        return identity

    def feedback_submitted(self, feedback: types_pb.Feedback, model: types_pb.ModelRef) -> str:
        identity = event_id("feedback", feedback.feedback_id)
        event = new_event(identity)
        event.feedback_submitted.feedback.CopyFrom(feedback)
        event.feedback_submitted.model.CopyFrom(model)
        self._publish(self.topics.feedback, feedback.generation_id, event)
        return identity

    def model_activated(
        self, model: types_pb.ModelRef, previous_version: str, is_rollback: bool
    ) -> str:
        identity = event_id("activation", model.version, str(time.time_ns()))
        event = new_event(identity)
        event.model_version_activated.model.CopyFrom(model)
        event.model_version_activated.previous_version = previous_version
        event.model_version_activated.is_rollback = is_rollback
        self._publish(self.topics.model_versions, model.name, event)
        return identity

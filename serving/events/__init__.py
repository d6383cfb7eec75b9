"""The event bus: generation, feedback and model-version events as protobuf records.

One interface (`EventBus` to publish, `EventConsumer` to read with committed group offsets) and
two adapters: `SqliteEventBus`, an embedded single-file log for one-machine use (the default),
and `KafkaEventBus` (kafka-python, idempotent producer, acks=all). Both pass the same contract
tests (tests/serving/test_event_bus_contract.py).
"""

from serving.events.bus import (
    EventBus,
    EventBusError,
    EventConsumer,
    Record,
    Topics,
)

__all__ = ["EventBus", "EventBusError", "EventConsumer", "Record", "Topics"]

"""One contract, two adapters: the embedded SQLite log and Kafka (a real tansu broker)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from serving.events.bus import EventBus, EventBusError, EventConsumer, Record
from serving.events.sqlite_bus import SqliteEventBus


def read_until(consumer: EventConsumer, count: int, timeout: float = 30.0) -> list[Record]:
    records: list[Record] = []
    deadline = time.monotonic() + timeout
    while len(records) < count and time.monotonic() < deadline:
        records += consumer.poll(0.5)
    return records


@pytest.fixture(params=["sqlite", pytest.param("kafka", marks=pytest.mark.kafka)])
def bus(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EventBus]:
    if request.param == "sqlite":
        adapter: EventBus = SqliteEventBus(tmp_path / "events.sqlite")
    else:
        from serving.events.kafka_bus import KafkaEventBus

        adapter = KafkaEventBus(request.getfixturevalue("tansu").bootstrap)
    yield adapter
    adapter.close()


def test_published_records_are_read_back_in_key_order_and_groups_resume(bus: EventBus) -> None:
    topic = f"contract.{uuid.uuid4().hex[:8]}"
    bus.create_topics([topic])
    bus.create_topics([topic])  # idempotent
    sent = [(f"gen-{i % 3}", f"value-{i}".encode()) for i in range(9)]
    for key, value in sent:
        bus.publish(topic, key, value)

    first = bus.consumer("group-a", [topic])
    records = read_until(first, len(sent))
    assert sorted((r.key, r.value) for r in records) == sorted(sent)
    assert all(r.topic == topic for r in records)
    for key in {k for k, _ in sent}:  # per-key order is publish order
        assert [r.value for r in records if r.key == key] == [v for k, v in sent if k == key]
    first.commit()
    first.close()

    bus.publish(topic, "gen-0", b"after-commit")
    resumed = bus.consumer("group-a", [topic])
    later = read_until(resumed, 1)
    assert [(r.key, r.value) for r in later] == [("gen-0", b"after-commit")]
    resumed.commit()
    resumed.close()

    other_group = bus.consumer("group-b", [topic])
    assert len(read_until(other_group, len(sent) + 1)) == len(sent) + 1
    other_group.close()


def test_embedded_log_refuses_unknown_topic_and_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "log.sqlite"
    bus = SqliteEventBus(path)
    with pytest.raises(EventBusError, match="does not exist"):
        bus.publish("nope.v1", "k", b"v")
    bus.create_topics(["t.v1"])
    bus.publish("t.v1", "k", b"durable")
    bus.close()
    reopened = SqliteEventBus(path)
    consumer = reopened.consumer("g", ["t.v1"])
    assert [(r.offset, r.value) for r in consumer.poll(0.1)] == [(0, b"durable")]
    consumer.close()
    reopened.close()

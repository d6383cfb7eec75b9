"""Kafka adapter of the event bus (kafka-python).

The producer is idempotent (`enable_idempotence=True`, which implies acks=all and retries), so
a retried send never duplicates a record within a producer session; `publish` blocks until the
broker acknowledged the write. Consumers use classic consumer groups with manual commits
(at-least-once; deduplicate on `Event.event_id`). Topics are created explicitly: brokers such
as tansu do not auto-create them.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from serving.events.bus import EventBusError, Record

PARTITIONS = 3
SESSION_TIMEOUT_MS = 6000
HEARTBEAT_INTERVAL_MS = 500


class KafkaEventBus:
    """`EventBus` over a Kafka cluster."""

    def __init__(self, bootstrap_servers: str, timeout_seconds: float = 10.0) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.timeout_seconds = timeout_seconds
        self._lock = threading.Lock()
        try:
            self._producer = KafkaProducer(
                bootstrap_servers=bootstrap_servers,
                client_id="vpt-serving",
                acks="all",
                enable_idempotence=True,
                linger_ms=0,
                request_timeout_ms=int(timeout_seconds * 1000),
            )
        except KafkaError as error:
            raise EventBusError(f"kafka {bootstrap_servers}: cannot connect: {error}") from None

    def create_topics(self, topics: Sequence[str]) -> None:
        admin = KafkaAdminClient(
            bootstrap_servers=self.bootstrap_servers,
            request_timeout_ms=int(self.timeout_seconds * 1000),
        )
        try:
            existing = set(admin.list_topics())
            missing = [t for t in topics if t not in existing]
            if missing:
                admin.create_topics([NewTopic(t, PARTITIONS, 1) for t in missing])
        except TopicAlreadyExistsError:
            pass
        except KafkaError as error:
            raise EventBusError(f"kafka: cannot create topics {list(topics)}: {error}") from None
        finally:
            admin.close()

    def publish(self, topic: str, key: str, value: bytes) -> None:
        try:
            with self._lock:
                future = self._producer.send(topic, key=key.encode(), value=value)
            future.get(timeout=self.timeout_seconds)
        except KafkaError as error:
            raise EventBusError(f"kafka: write to {topic} failed: {error!r}") from None

    def consumer(self, group: str, topics: Sequence[str]) -> KafkaEventConsumer:
        return KafkaEventConsumer(self.bootstrap_servers, group, topics)

    def close(self) -> None:
        self._producer.close(timeout=self.timeout_seconds)


class KafkaEventConsumer:
    """A consumer-group reader with manual commits."""

    def __init__(self, bootstrap_servers: str, group: str, topics: Sequence[str]) -> None:
        if not group:
            raise ValueError("consumer group must be a non-empty string")
        self._consumer = KafkaConsumer(
            *topics,
            bootstrap_servers=bootstrap_servers,
            group_id=group,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            session_timeout_ms=SESSION_TIMEOUT_MS,
            heartbeat_interval_ms=HEARTBEAT_INTERVAL_MS,
        )

    def poll(self, timeout_seconds: float, max_records: int = 500) -> list[Record]:
        batches = self._consumer.poll(
            timeout_ms=int(timeout_seconds * 1000), max_records=max_records
        )
        records = []
        for partition, messages in batches.items():
            for message in messages:
                key = message.key.decode() if message.key is not None else ""
                records.append(
                    Record(partition.topic, partition.partition, message.offset, key, message.value)
                )
        return records

    def commit(self) -> None:
        try:
            self._consumer.commit()
        except KafkaError as error:
            raise EventBusError(f"kafka: commit failed: {error!r}") from None

    def close(self) -> None:
        self._consumer.close()

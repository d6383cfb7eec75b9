"""The embedded event log: one SQLite file with per-topic offsets and committed group positions.

Each `publish` is its own transaction in WAL mode with `synchronous=FULL`, so a record that
`publish` returned for survives a crash or power loss. Offsets are dense per topic (one
partition). Several processes may share the file (SQLite locks it); a consumer group's position
is a row written by `commit`.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from serving.events.bus import EventBusError, Record

_SCHEMA = """
CREATE TABLE IF NOT EXISTS topics (name TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS records (
    topic TEXT NOT NULL, offset INTEGER NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL,
    written_at REAL NOT NULL, PRIMARY KEY (topic, offset));
CREATE TABLE IF NOT EXISTS group_offsets (
    group_id TEXT NOT NULL, topic TEXT NOT NULL, next_offset INTEGER NOT NULL,
    PRIMARY KEY (group_id, topic));
"""
POLL_INTERVAL_SECONDS = 0.05


def _connect(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=FULL")
    return connection


class SqliteEventBus:
    """`EventBus` over a single SQLite file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._connection = _connect(self.path)
            self._connection.executescript(_SCHEMA)
        except sqlite3.Error as error:
            raise EventBusError(f"event log {self.path}: {error}") from None

    def create_topics(self, topics: Sequence[str]) -> None:
        with self._lock:
            self._connection.executemany(
                "INSERT OR IGNORE INTO topics VALUES (?)", [(t,) for t in topics]
            )

    def publish(self, topic: str, key: str, value: bytes) -> None:
        with self._lock:
            try:
                self._connection.execute("BEGIN IMMEDIATE")
                known = self._connection.execute(
                    "SELECT 1 FROM topics WHERE name = ?", (topic,)
                ).fetchone()
                if known is None:
                    self._connection.execute("ROLLBACK")
                    raise EventBusError(f"topic {topic!r} does not exist; create it first")
                (next_offset,) = self._connection.execute(
                    "SELECT COALESCE(MAX(offset) + 1, 0) FROM records WHERE topic = ?", (topic,)
                ).fetchone()
                self._connection.execute(
                    "INSERT INTO records VALUES (?, ?, ?, ?, ?)",
                    (topic, next_offset, key, value, time.time()),
                )
                self._connection.execute("COMMIT")
            except sqlite3.Error as error:
                if self._connection.in_transaction:
                    self._connection.execute("ROLLBACK")
                raise EventBusError(f"event log {self.path}: {error}") from None

    def consumer(self, group: str, topics: Sequence[str]) -> SqliteConsumer:
        return SqliteConsumer(self.path, group, topics)

    def close(self) -> None:
        with self._lock:
            self._connection.close()


class SqliteConsumer:
    """A consumer-group reader of the embedded log."""

    def __init__(self, path: Path, group: str, topics: Sequence[str]) -> None:
        if not group:
            raise ValueError("consumer group must be a non-empty string")
        self.group = group
        self.topics = list(topics)
        self._connection = _connect(path)
        self._connection.executescript(_SCHEMA)
        self._positions = {topic: self._committed(topic) for topic in self.topics}

    def _committed(self, topic: str) -> int:
        row = self._connection.execute(
            "SELECT next_offset FROM group_offsets WHERE group_id = ? AND topic = ?",
            (self.group, topic),
        ).fetchone()
        return int(row[0]) if row else 0

    def poll(self, timeout_seconds: float, max_records: int = 500) -> list[Record]:
        deadline = time.monotonic() + timeout_seconds
        while True:
            records: list[Record] = []
            for topic in self.topics:
                rows = self._connection.execute(
                    "SELECT offset, key, value FROM records WHERE topic = ? AND offset >= ? "
                    "ORDER BY offset LIMIT ?",
                    (topic, self._positions[topic], max_records - len(records)),
                ).fetchall()
                for offset, key, value in rows:
                    records.append(Record(topic, 0, int(offset), key, bytes(value)))
                if rows:
                    self._positions[topic] = int(rows[-1][0]) + 1
            if records or time.monotonic() >= deadline:
                return records
            time.sleep(POLL_INTERVAL_SECONDS)

    def commit(self) -> None:
        self._connection.execute("BEGIN IMMEDIATE")
        self._connection.executemany(
            "INSERT INTO group_offsets VALUES (?, ?, ?) ON CONFLICT (group_id, topic) "
            "DO UPDATE SET next_offset = excluded.next_offset",
            [(self.group, topic, position) for topic, position in self._positions.items()],
        )
        self._connection.execute("COMMIT")

    def close(self) -> None:
        self._connection.close()

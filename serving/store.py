"""Durable generation records and feedback ids (one SQLite file in the server's state folder).

A generation is recorded when admitted (queued), updated when it runs and when it ends
(completed with its artifact, failed or cancelled), so `GetGeneration` answers after a dropped
stream and after a restart. A generation that was queued or running when the server stopped is
marked failed at the next start. Feedback ids are recorded after their event is written, which
makes `SubmitFeedback` idempotent.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

Status = Literal["queued", "running", "completed", "failed", "cancelled"]
FINISHED: tuple[Status, ...] = ("completed", "failed", "cancelled")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS generations (
    generation_id TEXT PRIMARY KEY, status TEXT NOT NULL, prompt TEXT NOT NULL,
    effective_prompt TEXT NOT NULL, params TEXT NOT NULL, model TEXT NOT NULL,
    artifact_uri TEXT NOT NULL DEFAULT '', artifact_sha256 TEXT NOT NULL DEFAULT '',
    error TEXT NOT NULL DEFAULT '', created_at REAL NOT NULL, finished_at REAL);
CREATE TABLE IF NOT EXISTS feedback (
    feedback_id TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, event_id TEXT NOT NULL,
    generation_id TEXT NOT NULL, recorded_at REAL NOT NULL);
"""


@dataclass(frozen=True)
class GenerationRecord:
    """What is known about one generation."""

    generation_id: str
    status: Status
    prompt: str
    effective_prompt: str
    params: dict[str, Any]
    model: dict[str, str]
    artifact_uri: str
    artifact_sha256: str
    error: str
    created_at: float
    finished_at: float | None


@dataclass(frozen=True)
class FeedbackRecord:
    feedback_id: str
    fingerprint: str
    event_id: str
    generation_id: str


class GenerationStore:
    """Thread-safe SQLite records of generations and feedback ids."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._connection = sqlite3.connect(
            self.path, timeout=30, isolation_level=None, check_same_thread=False
        )
        self._connection.execute("PRAGMA journal_mode=WAL")
        self._connection.execute("PRAGMA synchronous=FULL")
        self._connection.executescript(_SCHEMA)

    def mark_interrupted(self) -> int:
        """Mark generations left queued/running by a previous process as failed."""
        with self._lock:
            cursor = self._connection.execute(
                "UPDATE generations SET status = 'failed', error = 'server restarted', "
                "finished_at = ? WHERE status IN ('queued', 'running')",
                (time.time(),),
            )
            return cursor.rowcount

    def create(
        self,
        generation_id: str,
        prompt: str,
        effective_prompt: str,
        params: dict[str, Any],
        model: dict[str, str],
    ) -> None:
        with self._lock:
            self._connection.execute(
                "INSERT INTO generations (generation_id, status, prompt, effective_prompt, "
                "params, model, created_at) VALUES (?, 'queued', ?, ?, ?, ?, ?)",
                (
                    generation_id,
                    prompt,
                    effective_prompt,
                    json.dumps(params),
                    json.dumps(model),
                    time.time(),
                ),
            )

    def set_running(self, generation_id: str, model: dict[str, str]) -> None:
        with self._lock:
            self._connection.execute(
                "UPDATE generations SET status = 'running', model = ? WHERE generation_id = ?",
                (json.dumps(model), generation_id),
            )

    def finish(
        self,
        generation_id: str,
        status: Status,
        artifact_uri: str = "",
        artifact_sha256: str = "",
        error: str = "",
    ) -> None:
        if status not in FINISHED:
            raise ValueError(f"finish needs one of {FINISHED}, got {status!r}")
        with self._lock:
            self._connection.execute(
                "UPDATE generations SET status = ?, artifact_uri = ?, artifact_sha256 = ?, "
                "error = ?, finished_at = ? WHERE generation_id = ?",
                (status, artifact_uri, artifact_sha256, error, time.time(), generation_id),
            )

    def get(self, generation_id: str) -> GenerationRecord | None:
        with self._lock:
            row = self._connection.execute(
                "SELECT generation_id, status, prompt, effective_prompt, params, model, "
                "artifact_uri, artifact_sha256, error, created_at, finished_at "
                "FROM generations WHERE generation_id = ?",
                (generation_id,),
            ).fetchone()
        if row is None:
            return None
        return GenerationRecord(
            generation_id=row[0],
            status=row[1],
            prompt=row[2],
            effective_prompt=row[3],
            params=json.loads(row[4]),
            model=json.loads(row[5]),
            artifact_uri=row[6],
            artifact_sha256=row[7],
            error=row[8],
            created_at=row[9],
            finished_at=row[10],
        )

    def feedback(self, feedback_id: str) -> FeedbackRecord | None:
        with self._lock:
            row = self._connection.execute(
                "SELECT feedback_id, fingerprint, event_id, generation_id FROM feedback "
                "WHERE feedback_id = ?",
                (feedback_id,),
            ).fetchone()
        return FeedbackRecord(*row) if row else None

    def record_feedback(
        self, feedback_id: str, fingerprint: str, event_id: str, generation_id: str
    ) -> None:
        with self._lock:
            self._connection.execute(
                "INSERT OR IGNORE INTO feedback VALUES (?, ?, ?, ?, ?)",
                (feedback_id, fingerprint, event_id, generation_id, time.time()),
            )

    def close(self) -> None:
        with self._lock:
            self._connection.close()

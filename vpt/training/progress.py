"""Progress for long jobs: a progress bar on stderr and one JSON line of metrics per log step.

The metrics file is appended to, so a resumed run continues the same `metrics.jsonl`; entries
written after the resumed state was saved (by the interrupted attempt) are dropped on resume so
the file reads as one run.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm


class ProgressLog:
    """Progress bar + JSONL metrics for a run of `total_steps` steps."""

    def __init__(self, run_dir: Path, total_steps: int, start_step: int, desc: str) -> None:
        self.path = run_dir / "metrics.jsonl"
        run_dir.mkdir(parents=True, exist_ok=True)
        self._truncate_after(start_step)
        self.bar = tqdm(
            total=total_steps,
            initial=start_step,
            desc=desc,
            file=sys.stderr,
            dynamic_ncols=True,
            mininterval=2.0,
            disable=None,
        )
        self.started = time.monotonic()

    def _truncate_after(self, step: int) -> None:
        if not self.path.exists():
            return
        kept = [
            line
            for line in self.path.read_text().splitlines()
            if line.strip() and json.loads(line).get("step", 0) <= step
        ]
        self.path.write_text("".join(line + "\n" for line in kept))

    def advance(self, steps: int = 1, **postfix: float) -> None:
        self.bar.update(steps)
        if postfix:
            self.bar.set_postfix({k: f"{v:.4g}" for k, v in postfix.items()}, refresh=False)

    def log(self, step: int, **metrics: Any) -> None:
        record = {"step": step, "time": round(time.time(), 3), **metrics}
        with self.path.open("a") as handle:
            handle.write(json.dumps(record) + "\n")

    def close(self) -> None:
        self.bar.close()

"""Live progress: ``ProgressReport`` JSON written atomically to ``<root>/checkpoints/progress.json``.

SageMaker syncs the checkpoints folder to S3 while the job runs; the API reads the object. A
reader must never see a half-written file, so each write goes to a temporary file that is then
renamed over the old one. A heartbeat thread rewrites the latest report every
``HEARTBEAT_SECONDS`` so a slow phase (caching, a long first step) still refreshes ``updated_at``
within the contract's 30 seconds.
"""

from __future__ import annotations

import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from functions.domain.storage_layout import PROGRESS_FILENAME
from functions.domain.training_contract import Engine, ProgressReport, TrainingPhase

HEARTBEAT_SECONDS = 15.0
MIN_WRITE_INTERVAL_SECONDS = 1.0


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def write_json_atomically(path: Path, text: str) -> None:
    """Write-then-rename, so concurrent readers see the old or the new file, never a torn one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(path)


class ProgressReporter:
    """Holds the latest progress and writes it on phase changes, throttled steps and heartbeats."""

    def __init__(self, checkpoints_dir: Path, engine: Engine | None = None) -> None:
        self.path = checkpoints_dir / PROGRESS_FILENAME
        self._lock = threading.Lock()
        self._report = ProgressReport(phase=TrainingPhase.STAGING, engine=engine, updated_at=utc_now_iso())
        self._last_write = 0.0
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None

    @property
    def current(self) -> ProgressReport:
        with self._lock:
            return self._report.model_copy()

    def update(self, *, force: bool = False, **fields: Any) -> None:
        """Merge ``fields`` into the report; write now on a phase change, else at most once a second."""
        with self._lock:
            phase_changed = "phase" in fields and fields["phase"] != self._report.phase
            self._report = self._report.model_copy(update={**fields, "updated_at": utc_now_iso()})
            due = time.monotonic() - self._last_write >= MIN_WRITE_INTERVAL_SECONDS
            if force or phase_changed or due:
                self._write_locked()

    def _write_locked(self) -> None:
        write_json_atomically(self.path, self._report.model_dump_json())
        self._last_write = time.monotonic()

    def start_heartbeat(self, interval: float = HEARTBEAT_SECONDS) -> None:
        def beat() -> None:
            while not self._stop.wait(interval):
                with self._lock:
                    self._report = self._report.model_copy(update={"updated_at": utc_now_iso()})
                    self._write_locked()

        self._heartbeat = threading.Thread(target=beat, name="progress-heartbeat", daemon=True)
        self._heartbeat.start()

    def close(self) -> None:
        """Stop the heartbeat and write the final state."""
        self._stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join(timeout=5)
        with self._lock:
            self._write_locked()

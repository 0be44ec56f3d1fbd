"""The loss curve: ``MetricsReport`` JSON written atomically to ``<root>/checkpoints/metrics.json``.

Next to ``progress.json`` for the same reason (SageMaker syncs the checkpoints folder to S3 while
the job runs, with no network or credentials needed in the container). The curve is bounded by
``functions.domain.loss_curve.LossCurve``, so the file stays tens of kilobytes however many steps
the job has. A restarted (spot) job finds the file again in its checkpoints and continues the
same curve. On success the final curve is also published beside the LoRA in ``<root>/model``.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from pathlib import Path

from pydantic import ValidationError

from functions.domain.loss_curve import LossCurve
from functions.domain.storage_layout import METRICS_FILENAME
from functions.domain.training_contract import Engine, MetricPoint, MetricsReport
from training_container.progress import utc_now_iso, write_json_atomically

logger = logging.getLogger(__name__)

# The curve is for humans watching a job: every few seconds is live enough, and spares the
# checkpoint sync from re-uploading the file on every step of a fast job.
MIN_WRITE_INTERVAL_SECONDS = 5.0


class MetricsRecorder:
    """Records a point per step (bounded), writes the file throttled, and once more at the end."""

    def __init__(self, checkpoints_dir: Path, engine: Engine | None = None) -> None:
        self.path = checkpoints_dir / METRICS_FILENAME
        self.engine = engine
        self.total_steps: int | None = None
        self._lock = threading.Lock()
        self._curve = self._resume()
        latest = self._curve.latest
        self._elapsed_offset = (latest.elapsed_seconds or 0.0) if latest else 0.0
        self._started: float | None = None
        self._last_write = 0.0
        self._dirty = False

    def _resume(self) -> LossCurve:
        """The curve of an earlier attempt of this job, if its file came back with the checkpoints."""
        if not self.path.is_file():
            return LossCurve()
        try:
            report = MetricsReport.model_validate_json(self.path.read_text(encoding="utf-8"))
        except (ValidationError, OSError, UnicodeDecodeError):
            logger.warning("ignoring unreadable %s; starting a new curve", self.path)
            return LossCurve()
        self.total_steps = report.total_steps
        return LossCurve.resumed(report.points, report.stride)

    def record(
        self,
        *,
        step: int,
        epoch: int,
        loss: float | None,
        learning_rate: float | None = None,
        total_steps: int | None = None,
    ) -> None:
        """One step's values; written at most every ``MIN_WRITE_INTERVAL_SECONDS``."""
        now = time.monotonic()
        with self._lock:
            if self._started is None:
                self._started = now
            if total_steps is not None:
                self.total_steps = total_steps
            elapsed = self._elapsed_offset + (now - self._started)
            self._curve.add(
                MetricPoint(
                    step=step,
                    epoch=epoch,
                    loss=loss,
                    learning_rate=learning_rate,
                    elapsed_seconds=round(elapsed, 3),
                )
            )
            self._dirty = True
            if now - self._last_write >= MIN_WRITE_INTERVAL_SECONDS:
                self._write_locked()

    @property
    def report(self) -> MetricsReport:
        with self._lock:
            return self._report_locked()

    def _report_locked(self) -> MetricsReport:
        return MetricsReport(
            engine=self.engine,
            total_steps=self.total_steps,
            stride=self._curve.stride,
            points=self._curve.points(),
            updated_at=utc_now_iso(),
        )

    def _write_locked(self) -> None:
        write_json_atomically(self.path, self._report_locked().model_dump_json())
        self._last_write = time.monotonic()
        self._dirty = False

    def close(self) -> None:
        """Write what is not written yet (also on failure or stop: the curve up to there)."""
        with self._lock:
            if self._dirty:
                self._write_locked()

    def publish(self, model_dir: Path) -> Path | None:
        """Copy the final curve beside the LoRA (SageMaker uploads ``model/`` as the job's output)."""
        self.close()
        if not self.path.is_file():
            return None
        model_dir.mkdir(parents=True, exist_ok=True)
        target = model_dir / METRICS_FILENAME
        shutil.copyfile(self.path, target)
        return target

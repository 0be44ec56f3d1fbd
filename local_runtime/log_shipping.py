"""The local job runner's log agent: a training child's output into (emulated) CloudWatch Logs.

SageMaker ships a training container's stdout/stderr to the log group
``/aws/sagemaker/TrainingJobs``, stream ``<job name>/algo-1-<epoch seconds>``. The local runner
does the same against moto, so the API's log adapter reads the same place in both worlds:

    child stdout+stderr -> OutputPump -> container.log (raw bytes, as before)
                                      -> LogShipper -> put_log_events (batched, every second)
                                                    -> <stream>.jsonl journal (what was shipped)

moto keeps logs in memory only; the journal lets a restarted runtime put every shipped event
back (``restore_journals``), as the state snapshot does for tables and objects. Lines are split
on ``\\n`` and ``\\r`` (tqdm redraws its bar with ``\\r``), as a log agent turns them into events.
Shipping is best effort: a failure is logged and never stops the job; container.log keeps all.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

from botocore.exceptions import ClientError

from functions.domain.storage_layout import training_log_stream_prefix

logger = logging.getLogger("local_runtime.log_shipping")

# CloudWatch Logs limits of one PutLogEvents call: 10,000 events, 1 MiB counting 26 bytes per
# event; one event's message at most 256 KiB. The batches stay well inside them.
MAX_BATCH_EVENTS = 1000
MAX_BATCH_BYTES = 512 * 1024
EVENT_OVERHEAD_BYTES = 26
MAX_MESSAGE_BYTES = 64 * 1024
FLUSH_SECONDS = 1.0
JOURNAL_SUFFIX = ".jsonl"


def attempt_stream_name(job_name: str, started_at: float) -> str:
    """SageMaker's stream name for the single instance of one attempt."""
    return f"{training_log_stream_prefix(job_name)}algo-1-{int(started_at)}"


def split_message(message: str) -> list[str]:
    """A line longer than one event allows becomes several events (nothing is cut off)."""
    data = message.encode("utf-8")
    if len(data) <= MAX_MESSAGE_BYTES:
        return [message]
    chunks = [data[i : i + MAX_MESSAGE_BYTES] for i in range(0, len(data), MAX_MESSAGE_BYTES)]
    return [chunk.decode("utf-8", errors="replace") for chunk in chunks]


def ensure_stream(logs: Any, group: str, stream: str) -> None:
    for create in (
        lambda: logs.create_log_group(logGroupName=group),
        lambda: logs.create_log_stream(logGroupName=group, logStreamName=stream),
    ):
        try:
            create()
        except ClientError as error:
            if error.response["Error"]["Code"] != "ResourceAlreadyExistsException":
                raise


def put_batches(logs: Any, group: str, stream: str, events: list[dict[str, Any]]) -> None:
    """PutLogEvents in batches within CloudWatch's limits (events must be in time order)."""
    batch: list[dict[str, Any]] = []
    size = 0
    for event in events:
        event_size = len(event["message"].encode("utf-8")) + EVENT_OVERHEAD_BYTES
        if batch and (len(batch) >= MAX_BATCH_EVENTS or size + event_size > MAX_BATCH_BYTES):
            logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=batch)
            batch, size = [], 0
        batch.append(event)
        size += event_size
    if batch:
        logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=batch)


class LogShipper:
    """Buffers lines of one stream and ships them every ``FLUSH_SECONDS`` (and on close)."""

    def __init__(self, logs: Any, group: str, stream: str, journal: Path) -> None:
        self.group, self.stream, self.journal = group, stream, journal
        self._logs = logs
        self._pending: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._ship_lock = threading.Lock()
        self._closed = threading.Event()
        self._ready = False
        self._flusher = threading.Thread(target=self._flush_periodically, name="log-shipper", daemon=True)
        self._flusher.start()

    def add(self, message: str) -> None:
        now = int(time.time() * 1000)
        with self._lock:
            self._pending += [{"timestamp": now, "message": part} for part in split_message(message)]

    def _flush_periodically(self) -> None:
        while not self._closed.wait(FLUSH_SECONDS):
            self.flush()

    def flush(self) -> None:
        with self._ship_lock:  # one shipment at a time keeps the events in order
            with self._lock:
                events, self._pending = self._pending, []
            if not events:
                return
            self.journal.parent.mkdir(parents=True, exist_ok=True)
            with self.journal.open("a", encoding="utf-8") as journal:
                journal.writelines(json.dumps(event) + "\n" for event in events)
            try:
                if not self._ready:
                    ensure_stream(self._logs, self.group, self.stream)
                    self._ready = True
                put_batches(self._logs, self.group, self.stream, events)
            except Exception:  # the job goes on; container.log and the journal keep the lines
                logger.warning("could not ship %d log lines to %s", len(events), self.stream, exc_info=True)

    def close(self) -> None:
        self._closed.set()
        self._flusher.join(timeout=5)
        self.flush()


_LINE_BREAK = re.compile(rb"[\r\n]")


class OutputPump:
    """Copies a child's output to its log file and, line by line, to a shipper (its own thread)."""

    def __init__(self, source: IO[bytes], log_file: IO[bytes], shipper: LogShipper | None) -> None:
        self._source, self._log_file, self._shipper = source, log_file, shipper
        self._thread = threading.Thread(target=self._run, name="container-output", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float = 30.0) -> None:
        self._thread.join(timeout)
        if self._shipper is not None:
            self._shipper.close()

    def _run(self) -> None:
        pending = b""
        read = getattr(self._source, "read1", self._source.read)
        while chunk := read(65536):
            self._log_file.write(chunk)
            self._log_file.flush()
            pending += chunk
            *complete, pending = _LINE_BREAK.split(pending)
            self._ship(complete)
        self._ship([pending])

    def _ship(self, raw_lines: Iterable[bytes]) -> None:
        if self._shipper is None:
            return
        for raw in raw_lines:
            if raw.strip():  # CloudWatch refuses empty messages
                self._shipper.add(raw.decode("utf-8", errors="replace"))


def restore_journals(logs: Any, group: str, journals: Iterable[Path]) -> int:
    """Put the shipped events of earlier runs back into a fresh emulator; returns the count.

    CloudWatch (and moto) refuse events older than 14 days: those stay in the journals and in
    container.log, and the API shows the newer part of such a log.
    """
    restored = 0
    for journal in journals:
        stream = journal.name[: -len(JOURNAL_SUFFIX)].replace("__", "/")
        events = [json.loads(line) for line in journal.read_text(encoding="utf-8").splitlines() if line]
        if not events:
            continue
        try:
            ensure_stream(logs, group, stream)
            put_batches(logs, group, stream, sorted(events, key=lambda e: e["timestamp"]))
            restored += len(events)
        except Exception:
            logger.warning("could not restore the log of %s", stream, exc_info=True)
    return restored


def journal_path(folder: Path, stream: str) -> Path:
    """``<folder>/<stream with / as __>.jsonl`` (a stream name holds one ``/``)."""
    return folder / (stream.replace("/", "__") + JOURNAL_SUFFIX)

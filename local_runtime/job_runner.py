"""Runs accepted training jobs the way SageMaker does, on this machine.

For each job, in a bounded worker pool (default: one job at a time, so a laptop is not
overloaded; further jobs wait in ``Starting`` like jobs waiting for capacity):

    Starting -> Downloading: lay out /opt/ml under the job's work folder, download each channel's
                             S3 prefix and any earlier checkpoints (spot-resume semantics)
             -> Training:    run ``python -m training_container.entrypoint --root <folder>`` as a
                             child process, syncing checkpoints/ to CheckpointConfig.S3Uri every
                             few seconds (that is how live progress reaches the API), shipping its
                             output to CloudWatch Logs like SageMaker (``log_shipping``) and
                             enforcing StoppingCondition.MaxRuntimeInSeconds
             -> Uploading:   copy model/ to ``<S3OutputPath><job name>/output/model/`` (the
                             CompressionType=NONE layout)
             -> Completed | Failed (reason from output/failure) | Stopped | Stopped/MaxRuntimeExceeded

Every state change is saved and delivered as an EventBridge event to the sink (the control
plane's events handler in the local runtime).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from functions.domain.storage_layout import SAGEMAKER_TRAINING_LOG_GROUP, SUMMARY_FILENAME
from functions.domain.training_contract import CHECKPOINTS_FOLDER, FAILURE_FILE, MODEL_FOLDER
from local_runtime.child_processes import MARKER_VARIABLE, end_leftover_processes, spawn_guarded
from local_runtime.log_shipping import (
    JOURNAL_SUFFIX,
    LogShipper,
    OutputPump,
    attempt_stream_name,
    journal_path,
)
from local_runtime.sagemaker_jobs import (
    COMPLETED,
    FAILED,
    IN_PROGRESS,
    MAX_FAILURE_REASON_CHARS,
    STOPPED,
    TrainingJobRecord,
    TrainingJobStore,
    parse_s3_uri,
)

logger = logging.getLogger("local_runtime.job_runner")

EventSink = Callable[[dict[str, Any]], None]
PROJECT_ROOT = Path(__file__).resolve().parent.parent
STOPPED_BY_SHUTDOWN_REASON = "local runtime stopped while the job was running"
EVENT_DELIVERY_ATTEMPTS = 3


@dataclass(frozen=True)
class RunnerOptions:
    """How the local job runner behaves; the defaults suit a laptop."""

    max_concurrent_jobs: int = 1
    checkpoint_sync_seconds: float = 2.0
    stop_grace_seconds: float = 20.0
    # The container's ``train`` command; ``--root <job folder>`` is appended.
    container_command: tuple[str, ...] = (sys.executable, "-m", "training_container.entrypoint")


@dataclass(frozen=True)
class JobFolder:
    """The SageMaker ``/opt/ml`` layout of one job under the runner's work root."""

    root: Path

    @property
    def config_dir(self) -> Path:
        return self.root / "input" / "config"

    def channel(self, name: str) -> Path:
        return self.root / "input" / "data" / name

    @property
    def model_dir(self) -> Path:
        return self.root / MODEL_FOLDER

    @property
    def checkpoints_dir(self) -> Path:
        return self.root / CHECKPOINTS_FOLDER

    @property
    def output_dir(self) -> Path:
        return self.root / "output"

    @property
    def failure_file(self) -> Path:
        return self.root / FAILURE_FILE

    @property
    def log_file(self) -> Path:
        return self.root.parent / "container.log"

    @property
    def log_journal_dir(self) -> Path:
        """What was shipped to CloudWatch Logs, to put back into a restarted emulator."""
        return self.root.parent / "cloudwatch"

    def create(self) -> None:
        for folder in (self.config_dir, self.model_dir, self.checkpoints_dir, self.output_dir):
            folder.mkdir(parents=True, exist_ok=True)


@dataclass
class ChildOutcome:
    exit_code: int
    runtime_exceeded: bool


class EmptyChannel(Exception):
    """A File-mode S3Prefix channel with no objects: SageMaker refuses such a job, in these words
    (its ClientError, as reported in aws/amazon-sagemaker-examples issues #2267 and #2489)."""

    def __init__(self, uri: str, region: str, role_arn: str) -> None:
        bucket = uri.removeprefix("s3://").split("/", 1)[0]
        super().__init__(
            f'ClientError: No S3 objects found under S3 URL "{uri}" given in input data source. '
            f"Please ensure that the bucket exists in the selected region ({region}), that objects "
            f'exist under that S3 prefix, and that the role "{role_arn}" has "s3:ListBucket" '
            f'permissions on bucket "{bucket}".'
        )


class S3Folders:
    """Prefix <-> folder copies against the (emulated) S3, as SageMaker's agents do them."""

    def __init__(self, s3_client: Any) -> None:
        self._s3 = s3_client

    def _keys(self, bucket: str, prefix: str) -> list[str]:
        keys: list[str] = []
        for page in self._s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys.extend(item["Key"] for item in page.get("Contents", []))
        return keys

    def download_prefix(self, uri: str, destination: Path, field_name: str) -> int:
        """Download every object under ``uri`` keeping paths relative to the prefix; returns the count."""
        bucket, prefix = parse_s3_uri(uri, field_name)
        count = 0
        for key in self._keys(bucket, prefix):
            if key.endswith("/"):
                continue
            relative = key[len(prefix) :].lstrip("/") or key.rsplit("/", 1)[-1]
            target = (destination / relative).resolve()
            if not target.is_relative_to(destination.resolve()):
                raise ValueError(f"object key {key!r} escapes the channel folder")
            target.parent.mkdir(parents=True, exist_ok=True)
            self._s3.download_file(bucket, key, str(target))
            count += 1
        return count

    def upload_folder(
        self, folder: Path, uri: str, field_name: str, already_sent: dict[str, tuple[int, int]] | None = None
    ) -> None:
        """Upload files of ``folder`` under ``uri``; with ``already_sent``, only new or changed ones."""
        bucket, prefix = parse_s3_uri(uri, field_name)
        prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
        for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.endswith(".tmp")):
            relative = path.relative_to(folder).as_posix()
            try:
                stat = path.stat()
            except FileNotFoundError:  # replaced atomically between listing and reading
                continue
            signature = (stat.st_mtime_ns, stat.st_size)
            if already_sent is not None and already_sent.get(relative) == signature:
                continue
            self._s3.upload_file(str(path), bucket, prefix + relative)
            if already_sent is not None:
                already_sent[relative] = signature


class LocalTrainingJobRunner:
    """A bounded pool running jobs as child processes and reporting every state change."""

    def __init__(
        self,
        store: TrainingJobStore,
        s3_client: Any,
        work_root: Path,
        event_sink: EventSink,
        options: RunnerOptions | None = None,
        *,
        logs_client: Any | None = None,
        log_group: str = SAGEMAKER_TRAINING_LOG_GROUP,
    ) -> None:
        self._store = store
        self._s3 = S3Folders(s3_client)
        self._logs, self.log_group = logs_client, log_group
        self._work_root = work_root
        self._sink = event_sink
        self._options = options or RunnerOptions()
        self._pool = ThreadPoolExecutor(self._options.max_concurrent_jobs, thread_name_prefix="training-job")
        self._processes: dict[str, subprocess.Popen[bytes]] = {}
        self._stop_events: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self._shutting_down = threading.Event()

    # --- state changes -------------------------------------------------------------------

    def transition(self, record: TrainingJobRecord, status: str, secondary: str, message: str) -> None:
        """Record a state change, persist it and deliver the EventBridge event."""
        with self._store.lock:
            record.enter(status, secondary, message)
            self._store.save(record)
            event = record.state_change_event()
        self.deliver(event)

    def deliver(self, event: dict[str, Any]) -> None:
        """Deliver one event, retrying like EventBridge does; a failing handler never kills a job."""
        for attempt in range(1, EVENT_DELIVERY_ATTEMPTS + 1):
            try:
                self._sink(event)
                return
            except Exception:
                logger.exception(
                    "event handler failed for %s (attempt %d/%d)",
                    event["detail"]["TrainingJobName"],
                    attempt,
                    EVENT_DELIVERY_ATTEMPTS,
                )
                time.sleep(0.2 * attempt)

    # --- public operations ---------------------------------------------------------------

    def submit(self, record: TrainingJobRecord) -> None:
        with self._lock:
            self._stop_events[record.name] = threading.Event()
        self.deliver(record.state_change_event())
        self._pool.submit(self._run_guarded, record)

    def request_stop(self, record: TrainingJobRecord) -> None:
        """StopTrainingJob: SIGTERM the child (SIGKILL after the grace period), or cancel a queued job."""
        with self._lock:
            stop_event = self._stop_events.get(record.name)
            running = record.name in self._processes
        if stop_event is not None:
            stop_event.set()
        if not running and record.training_start_time is None and not record.is_terminal:
            self.transition(record, STOPPED, "Stopped", "Training job stopped before it started.")

    def shutdown(self) -> None:
        """Stop accepting work, stop running children, wait for workers to record the outcome."""
        self._shutting_down.set()
        with self._lock:
            stop_events = list(self._stop_events.values())
        for stop_event in stop_events:
            stop_event.set()
        self._pool.shutdown(wait=True, cancel_futures=True)

    # --- the job ------------------------------------------------------------------------

    def _run_guarded(self, record: TrainingJobRecord) -> None:
        try:
            self._run(record)
        except Exception as error:
            logger.exception("local training job %s crashed", record.name)
            if not record.is_terminal:
                record.failure_reason = f"InternalServerError: local job runner: {error}"[
                    :MAX_FAILURE_REASON_CHARS
                ]
                self.transition(record, FAILED, "Failed", "Training job failed.")
        finally:
            with self._lock:
                self._processes.pop(record.name, None)
                self._stop_events.pop(record.name, None)

    def _run(self, record: TrainingJobRecord) -> None:
        try:
            self._run_prepared(record)
        except EmptyChannel as empty:
            record.failure_reason = str(empty)[:MAX_FAILURE_REASON_CHARS]
            self.transition(record, FAILED, "Failed", "Training job failed.")

    def _run_prepared(self, record: TrainingJobRecord) -> None:
        if record.is_terminal:  # stopped while queued
            return
        stop_event = self._stop_events[record.name]
        folder = JobFolder(self._work_root / record.name / "opt_ml")
        self.transition(record, record.status, "Downloading", "Downloading input data")
        self._prepare(record, folder)
        if stop_event.is_set():
            self._finish_stopped(record, folder, runtime_exceeded=False)
            return
        record.training_start_time = time.time()
        self.transition(
            record, record.status, "Training", "Training image download completed. Training in progress."
        )
        outcome = self._run_container(record, folder, stop_event)
        self._sync_checkpoints(record, folder, already_sent=None)
        if self._shutting_down.is_set() and not record.stop_requested:
            record.failure_reason = STOPPED_BY_SHUTDOWN_REASON
            self.transition(record, FAILED, "Failed", "Training job failed.")
        elif (record.stop_requested or outcome.runtime_exceeded) and not self._finished(folder, outcome):
            self._finish_stopped(record, folder, outcome.runtime_exceeded)
        elif outcome.exit_code == 0:
            self.transition(record, IN_PROGRESS, "Uploading", "Uploading generated training model")
            self._upload_model(record, folder)
            self.transition(record, COMPLETED, "Completed", "Training job completed")
        else:
            record.failure_reason = self._failure_reason(folder, outcome.exit_code)
            self.transition(record, FAILED, "Failed", "Training job failed.")

    @staticmethod
    def _finished(folder: JobFolder, outcome: ChildOutcome) -> bool:
        """The container had already completed (exit 0, ``summary.json`` published) when a stop
        or the runtime limit arrived: there was nothing left to stop, so the job is recorded
        Completed and its LoRA kept, not discarded as a Stopped job's outputs are. (SageMaker's
        StopTrainingJob only delays termination by SIGTERM "so the results of the training is not
        lost"; this runner's choice for the race is the one that loses nothing.)"""
        return outcome.exit_code == 0 and (folder.model_dir / SUMMARY_FILENAME).is_file()

    def _finish_stopped(self, record: TrainingJobRecord, folder: JobFolder, runtime_exceeded: bool) -> None:
        # SageMaker uploads whatever the container saved in model/ even when a job is stopped.
        self._upload_model(record, folder)
        if runtime_exceeded:
            self.transition(
                record, STOPPED, "MaxRuntimeExceeded", "Training job stopped: MaxRuntimeInSeconds exceeded"
            )
        else:
            self.transition(record, STOPPED, "Stopped", "Training job stopped.")

    def _prepare(self, record: TrainingJobRecord, folder: JobFolder) -> None:
        request = record.request
        folder.create()
        hyperparameters = {key: str(value) for key, value in (request.get("HyperParameters") or {}).items()}
        (folder.config_dir / "hyperparameters.json").write_text(json.dumps(hyperparameters), encoding="utf-8")
        (folder.config_dir / "resourceconfig.json").write_text(
            json.dumps({"current_host": "algo-1", "hosts": ["algo-1"], "network_interface_name": "lo"}),
            encoding="utf-8",
        )
        channels = request.get("InputDataConfig") or []
        (folder.config_dir / "inputdataconfig.json").write_text(
            json.dumps(
                {
                    channel["ChannelName"]: {
                        "TrainingInputMode": channel.get("InputMode", "File"),
                        "S3DistributionType": channel["DataSource"]["S3DataSource"].get(
                            "S3DataDistributionType", "FullyReplicated"
                        ),
                        "RecordWrapperType": "None",
                    }
                    for channel in channels
                }
            ),
            encoding="utf-8",
        )
        for index, channel in enumerate(channels):
            destination = folder.channel(channel["ChannelName"])
            destination.mkdir(parents=True, exist_ok=True)
            uri = channel["DataSource"]["S3DataSource"]["S3Uri"]
            if self._s3.download_prefix(uri, destination, f"InputDataConfig[{index}].S3Uri") == 0:
                raise EmptyChannel(uri, record.region, str(request.get("RoleArn", "")))
        checkpoint_uri = (request.get("CheckpointConfig") or {}).get("S3Uri")
        if checkpoint_uri:  # a restarted (spot) job resumes from what it saved before
            self._s3.download_prefix(checkpoint_uri, folder.checkpoints_dir, "CheckpointConfig.S3Uri")

    def _child_environment(self, record: TrainingJobRecord, folder: JobFolder) -> dict[str, str]:
        # The container gets no AWS credentials or endpoints: like a network-isolated job, it
        # only reads and writes its folders.
        env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
        env.update({str(k): str(v) for k, v in (record.request.get("Environment") or {}).items()})
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH", "")]))
        env["TRAINING_JOB_NAME"] = record.name
        env["TRAINING_JOB_ARN"] = record.arn
        env["SM_CURRENT_HOST"] = "algo-1"
        env["SM_MODEL_DIR"] = str(folder.model_dir)
        env["SM_OUTPUT_DATA_DIR"] = str(folder.output_dir / "data")
        env["PYTHONUNBUFFERED"] = "1"
        env[MARKER_VARIABLE] = str(self._work_root.resolve())  # found and ended after a crash
        return env

    def _run_container(
        self, record: TrainingJobRecord, folder: JobFolder, stop_event: threading.Event
    ) -> ChildOutcome:
        # Under the guardian, in its own process group: Ctrl-C in the runtime's terminal is not a
        # stop request, the tree dies with the runtime, and it can be killed at once (child_processes).
        command = [*self._options.container_command, "--root", str(folder.root)]
        max_runtime = (record.request.get("StoppingCondition") or {}).get("MaxRuntimeInSeconds", 86400)
        deadline = time.monotonic() + float(max_runtime)
        with folder.log_file.open("ab") as log:
            process = spawn_guarded(
                command,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=self._child_environment(record, folder),
                cwd=str(folder.root),
            )
            assert process.stdout is not None
            pump = OutputPump(process.stdout, log, self._log_shipper(record, folder))
            pump.start()
            with self._lock:
                self._processes[record.name] = process
            sent: dict[str, tuple[int, int]] = {}
            runtime_exceeded = False
            while process.poll() is None:
                stop_event.wait(
                    timeout=min(self._options.checkpoint_sync_seconds, max(0.05, deadline - time.monotonic()))
                )
                if stop_event.is_set() or time.monotonic() >= deadline:
                    runtime_exceeded = not stop_event.is_set()
                    self._terminate(process)
                    break
                self._sync_checkpoints(record, folder, sent)
            exit_code = process.wait()
            pump.join()  # the child's last lines reach the log file and CloudWatch Logs
            return ChildOutcome(exit_code=exit_code, runtime_exceeded=runtime_exceeded)

    def _log_shipper(self, record: TrainingJobRecord, folder: JobFolder) -> LogShipper | None:
        """This attempt's CloudWatch Logs stream (None when the runner has no logs client)."""
        if self._logs is None:
            return None
        stream = attempt_stream_name(record.name, record.training_start_time or time.time())
        return LogShipper(self._logs, self.log_group, stream, journal_path(folder.log_journal_dir, stream))

    def log_journals(self) -> list[Path]:
        """Every job's shipped-log journal under the work root (oldest attempt first per job)."""
        return sorted(self._work_root.glob(f"*/cloudwatch/*{JOURNAL_SUFFIX}"))

    def _terminate(self, process: subprocess.Popen[bytes]) -> None:
        """SIGTERM like SageMaker, then SIGKILL once the grace period is over."""
        if process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=self._options.stop_grace_seconds)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)  # the guardian leads the group: the whole tree

    def end_leftover_processes(self) -> list[int]:
        """Kill training processes left running by an earlier runtime on this work folder."""
        return end_leftover_processes(self._work_root)

    def _sync_checkpoints(
        self, record: TrainingJobRecord, folder: JobFolder, already_sent: dict[str, tuple[int, int]] | None
    ) -> None:
        uri = (record.request.get("CheckpointConfig") or {}).get("S3Uri")
        if not uri or not folder.checkpoints_dir.exists():
            return
        try:
            self._s3.upload_folder(folder.checkpoints_dir, uri, "CheckpointConfig.S3Uri", already_sent)
        except Exception:  # progress is best effort while running; the final sync is retried at the end
            logger.warning("checkpoint sync failed for %s", record.name, exc_info=True)

    def _upload_model(self, record: TrainingJobRecord, folder: JobFolder) -> None:
        if not any(path.is_file() for path in folder.model_dir.rglob("*")):
            return
        output_path = record.request["OutputDataConfig"]["S3OutputPath"].rstrip("/") + "/"
        artifacts = f"{output_path}{record.name}/output/model/"
        self._s3.upload_folder(folder.model_dir, artifacts, "OutputDataConfig.S3OutputPath")
        record.model_artifacts_uri = artifacts

    @staticmethod
    def _failure_reason(folder: JobFolder, exit_code: int) -> str:
        if folder.failure_file.is_file():
            text = folder.failure_file.read_text(encoding="utf-8", errors="replace").strip()
            if text:
                return text[:MAX_FAILURE_REASON_CHARS]
        return f"AlgorithmError: the training container exited with code {exit_code} without a failure reason"

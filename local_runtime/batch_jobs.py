"""The local AWS Batch job queue for SageMaker Training service jobs: capacity, fair share,
priority, terminate, and a queue that survives a restart.

moto does not implement Batch service jobs (no SubmitServiceJob in ``moto.batch``), so the local
runtime keeps this small stand-in beside its SageMaker. It follows the AWS Batch user guide
("Submit a service job"): a job enters SUBMITTED and waits RUNNABLE until the service environment
has capacity, then becomes SCHEDULED and is handed to SageMaker (CreateTrainingJob with the
``serviceRequestPayload``, under a name of its own, as AWS does), then STARTING / RUNNING while
SageMaker runs it, then SUCCEEDED or FAILED. Capacity is counted in instances (``capacityUnit``
NUM_INSTANCES): one per job, since this service launches one instance per training job.

Fair share (a fair-share scheduling policy, as the deployment's queue has): when a slot frees,
the next job is taken from the share (``shareIdentifier``) that has used the least capacity
recently (jobs running now plus jobs started within ``share_decay_seconds``); within a share,
the higher ``schedulingPriority`` first, then the older job. Batch's exact weighting is AWS's
own; this keeps its observable contract: one owner's backlog cannot starve another owner.

Every change is written to ``<folder>/jobs.json`` before it takes effect outside (a job is
recorded SCHEDULED before SageMaker is asked to run it), so a restarted runtime neither loses a
queued job nor starts one twice: a SCHEDULED job SageMaker does not know is handed over again
under the same training-job name, which SageMaker refuses to create twice.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from functions.domain.batch_queue import (
    BATCH_TRAINING_JOB_PREFIX,
    ENDED_STATUSES,
    MAX_PRIORITY,
    MIN_PRIORITY,
    RUNNING_STATUSES,
    SERVICE_JOB_STATE_CHANGE,
    SERVICE_JOB_TYPE,
    SHARE_DECAY_SECONDS,
    WAITING_STATUSES,
)

logger = logging.getLogger("local_runtime.batch")

ACCOUNT_ID = "000000000000"
CAPACITY_REASON = "Waiting for capacity: the service environment's instances are all in use"
TICK_SECONDS = 0.2


class BatchError(Exception):
    """A Batch ``ClientException`` (HTTP 400), as botocore's batch model declares its errors."""

    def __init__(self, message: str, code: str = "ClientException", http_status: int = 400) -> None:
        super().__init__(message)
        self.code, self.message, self.http_status = code, message, http_status


@dataclass
class ServiceJob:
    """One service job: the SubmitServiceJob request plus what DescribeServiceJob reports."""

    job_id: str
    job_name: str
    job_queue: str
    payload: str
    share_identifier: str | None
    priority: int
    region: str
    sequence: int
    client_token: str | None = None
    status: str = "RUNNABLE"
    status_reason: str | None = CAPACITY_REASON
    created_at: float = field(default_factory=time.time)
    scheduled_at: float | None = None
    started_at: float | None = None
    stopped_at: float | None = None
    is_terminated: bool = False
    training_job_arn: str | None = None
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def arn(self) -> str:
        return f"arn:aws:batch:{self.region}:{ACCOUNT_ID}:service-job/{self.job_id}"

    @property
    def training_job_name(self) -> str:
        """The name Batch creates the training job under: its own, not the payload's (see
        functions.domain.batch_queue.JOB_NAME_TAG), and always the same for this job, so a
        restarted runtime hands the job over under the same name. AWS does not document the
        format beyond its ``AWSBatch`` prefix; here it is that prefix and the job's id."""
        return f"{BATCH_TRAINING_JOB_PREFIX}{self.job_id.replace('-', '')}"

    def describe(self) -> dict[str, Any]:
        """DescribeServiceJobResponse (timestamps in epoch milliseconds, as Batch sends them)."""
        ms = lambda t: int(t * 1000) if t is not None else None  # noqa: E731 - four uses below
        response: dict[str, Any] = {
            "jobArn": self.arn,
            "jobId": self.job_id,
            "jobName": self.job_name,
            "jobQueue": self.job_queue,
            "serviceJobType": SERVICE_JOB_TYPE,
            "serviceRequestPayload": self.payload,
            "schedulingPriority": self.priority,
            "status": self.status,
            "createdAt": ms(self.created_at),
            # Required by the model; 0 until the job has started (as for a queued job in AWS).
            "startedAt": ms(self.started_at) or 0,
            "isTerminated": self.is_terminated,
            "attempts": [],
            "tags": self.tags,
        }
        optional = {
            "shareIdentifier": self.share_identifier,
            "statusReason": self.status_reason,
            "scheduledAt": ms(self.scheduled_at),
            "stoppedAt": ms(self.stopped_at),
        }
        response |= {key: value for key, value in optional.items() if value is not None}
        if self.training_job_arn:
            resource = {"name": "TrainingJobArn", "value": self.training_job_arn}
            response["latestAttempt"] = {"serviceResourceId": resource}
            response["attempts"] = [
                {
                    "serviceResourceId": resource,
                    "startedAt": ms(self.started_at or self.scheduled_at),
                    **({"stoppedAt": ms(self.stopped_at)} if self.stopped_at else {}),
                    **({"statusReason": self.status_reason} if self.status_reason else {}),
                }
            ]
        return response

    def summary(self) -> dict[str, Any]:
        """ServiceJobSummary, as ListServiceJobs returns it."""
        described = self.describe()
        keys = (
            "latestAttempt",
            "createdAt",
            "jobArn",
            "jobId",
            "jobName",
            "scheduledAt",
            "serviceJobType",
            "shareIdentifier",
            "status",
            "statusReason",
            "startedAt",
            "stoppedAt",
            "isTerminated",
        )
        return {key: described[key] for key in keys if key in described}

    def state_change_event(self) -> dict[str, Any]:
        """The EventBridge "Batch Service Job State Change" event (the detail resembles
        DescribeServiceJob without ``tags`` and ``serviceRequestPayload``, per the user guide)."""
        detail = {k: v for k, v in self.describe().items() if k not in ("tags", "serviceRequestPayload")}
        return {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": SERVICE_JOB_STATE_CHANGE,
            "source": "aws.batch",
            "account": ACCOUNT_ID,
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "region": self.region,
            "resources": [self.arn],
            "detail": detail,
        }


# What the queue needs from the local SageMaker: start a training job from the payload (its ARN;
# BatchError when SageMaker refuses it), the status and secondary status of a training job by
# name (None if unknown), and stop one.
StartTraining = Callable[[dict[str, Any]], str]
TrainingStatus = Callable[[str], tuple[str, str] | None]
StopTraining = Callable[[str], None]
EventSink = Callable[[dict[str, Any]], None]


class ServiceJobQueue:
    """The job queue and its service environment (capacity in instances), persisted to disk."""

    def __init__(
        self,
        folder: Path,
        *,
        capacity: int,
        region: str,
        start_training: StartTraining,
        training_status: TrainingStatus,
        stop_training: StopTraining,
        event_sink: EventSink,
        share_decay_seconds: float = SHARE_DECAY_SECONDS,
    ) -> None:
        if capacity < 1:
            raise ValueError("the service environment's capacity must be at least 1 instance")
        self.capacity = capacity
        self._region = region
        self._start_training = start_training
        self._training_status = training_status
        self._stop_training = stop_training
        self._sink = event_sink
        self._decay = share_decay_seconds
        self._file = folder / "jobs.json"
        folder.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._jobs: dict[str, ServiceJob] = {}
        if self._file.is_file():
            for data in json.loads(self._file.read_text(encoding="utf-8")):
                job = ServiceJob(**data)
                self._jobs[job.job_id] = job
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    # --- the API --------------------------------------------------------------------------------

    def submit(self, request: dict[str, Any]) -> ServiceJob:
        """SubmitServiceJob: checks what Batch checks (not the payload: "passed through without
        validation", per the user guide), then queues the job RUNNABLE."""
        for name in ("jobName", "jobQueue", "serviceRequestPayload", "serviceJobType"):
            if not request.get(name):
                raise BatchError(f"{name} is required")
        if request["serviceJobType"] != SERVICE_JOB_TYPE:
            raise BatchError(f"serviceJobType must be {SERVICE_JOB_TYPE}")
        priority = request.get("schedulingPriority", 0)
        if not isinstance(priority, int) or not MIN_PRIORITY <= priority <= MAX_PRIORITY:
            raise BatchError(
                f"schedulingPriority must be an integer between {MIN_PRIORITY} and {MAX_PRIORITY}"
            )
        if not request.get("shareIdentifier"):
            # The local queue, like the deployment's, has a fair-share scheduling policy.
            raise BatchError("shareIdentifier is required: the job queue has a fair-share scheduling policy")
        try:
            payload = json.loads(request["serviceRequestPayload"])
        except json.JSONDecodeError as error:
            raise BatchError(f"serviceRequestPayload is not JSON: {error}") from error
        if not isinstance(payload, dict) or not payload.get("TrainingJobName"):
            raise BatchError(
                "serviceRequestPayload must be a CreateTrainingJob request with a TrainingJobName"
            )
        token = request.get("clientToken")
        with self._lock:
            for existing in self._jobs.values():
                if (
                    token
                    and existing.client_token == token
                    and existing.payload == request["serviceRequestPayload"]
                ):
                    return existing  # the same request again (a retry): the same job
            job = ServiceJob(
                job_id=str(uuid.uuid4()),
                job_name=str(request["jobName"]),
                job_queue=str(request["jobQueue"]),
                payload=str(request["serviceRequestPayload"]),
                share_identifier=str(request["shareIdentifier"]),
                priority=priority,
                region=self._region,
                sequence=max((j.sequence for j in self._jobs.values()), default=0) + 1,
                client_token=token,
                tags=dict(request.get("tags") or {}),
            )
            self._jobs[job.job_id] = job
            self._save()
        self._wake.set()
        return job

    def get(self, job_id: str) -> ServiceJob:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise BatchError(f"Service job {job_id} does not exist")
        return job

    def all(self) -> list[ServiceJob]:
        with self._lock:
            return list(self._jobs.values())

    def terminate(self, job_id: str, reason: str) -> None:
        """TerminateServiceJob: a queued job ends FAILED (terminated) and never reaches SageMaker;
        a running one has its training job stopped, and ends when SageMaker reports it stopped."""
        job = self.get(job_id)
        with self._lock:
            if job.status in ENDED_STATUSES:
                return
            job.is_terminated = True
            if job.status in WAITING_STATUSES:
                self._enter(job, "FAILED", f"Terminated: {reason}")
                job.stopped_at = time.time()
                self._save()
                event = job.state_change_event()
                name = None
            else:
                self._save()
                event, name = None, job.training_job_name
        if event is not None:
            self._deliver(event)
        if name is not None and job.training_job_arn is not None:
            self._stop_training(name)
        self._wake.set()

    # --- scheduling -----------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="local-batch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:  # the scheduler must keep running; the next tick retries
                logger.exception("local Batch scheduler failed")
            self._wake.wait(TICK_SECONDS)
            self._wake.clear()

    def tick(self) -> None:
        """Follow the jobs SageMaker runs, then fill free capacity in fair-share order."""
        for job in self.all():
            if job.status in RUNNING_STATUSES:
                self._follow(job)
        while not self._stop.is_set():
            chosen = self._next_job()
            if chosen is None:
                return
            self._hand_over(chosen)

    def _in_use(self) -> int:
        return sum(1 for job in self.all() if job.status in RUNNING_STATUSES)

    def _next_job(self) -> ServiceJob | None:
        """The next RUNNABLE job if there is capacity: least-used share, then priority, then age."""
        with self._lock:
            if self._in_use() >= self.capacity:
                return None
            runnable = [job for job in self._jobs.values() if job.status in WAITING_STATUSES]
            if not runnable:
                return None
            horizon = time.time() - self._decay
            usage: dict[str | None, int] = {}
            for job in self._jobs.values():
                recent = job.scheduled_at is not None and job.scheduled_at >= horizon
                if job.status in RUNNING_STATUSES or recent:
                    usage[job.share_identifier] = usage.get(job.share_identifier, 0) + 1
            return min(runnable, key=lambda j: (usage.get(j.share_identifier, 0), -j.priority, j.sequence))

    def _hand_over(self, job: ServiceJob) -> None:
        """SCHEDULED (saved) first, then CreateTrainingJob: see the module docstring."""
        with self._lock:
            self._enter(job, "SCHEDULED", "Submitted to SageMaker")
            job.scheduled_at = time.time()
            self._save()
            event = job.state_change_event()
        self._deliver(event)
        self._create_training(job)

    def _create_training(self, job: ServiceJob) -> None:
        payload = {**json.loads(job.payload), "TrainingJobName": job.training_job_name}
        try:
            arn = self._start_training(payload)
        except BatchError as refused:
            if self._training_status(job.training_job_name) is None:
                with self._lock:
                    self._enter(job, "FAILED", f"SageMaker refused the job: {refused.message}")
                    job.stopped_at = time.time()
                    self._save()
                    event = job.state_change_event()
                self._deliver(event)
                return
            arn = self._existing_arn(job)  # already created by a run that stopped in between
        with self._lock:
            job.training_job_arn = arn
            self._save()

    def _existing_arn(self, job: ServiceJob) -> str:
        return f"arn:aws:sagemaker:{self._region}:{ACCOUNT_ID}:training-job/{job.training_job_name.lower()}"

    def _follow(self, job: ServiceJob) -> None:
        """Map the training job's state onto the service job (the user guide's status mapping)."""
        state = self._training_status(job.training_job_name)
        if state is None:
            if job.training_job_arn is None and job.status == "SCHEDULED":
                self._create_training(job)  # recorded SCHEDULED, never handed over: hand it over
            return
        if job.training_job_arn is None:
            with self._lock:
                job.training_job_arn = self._existing_arn(job)
                self._save()
        status, secondary = state
        target, reason = job.status, job.status_reason
        if status == "InProgress":
            target = "RUNNING" if secondary in ("Training", "Uploading") else "STARTING"
            reason = None
        elif status == "Completed":
            target, reason = "SUCCEEDED", "Received status from SageMaker: Training job completed"
        elif status in ("Failed", "Stopped"):
            target, reason = "FAILED", f"Received status from SageMaker: Training job {status.lower()}"
        if target == job.status:
            return
        with self._lock:
            self._enter(job, target, reason)
            if target == "RUNNING" and job.started_at is None:
                job.started_at = time.time()
            if target in ENDED_STATUSES:
                job.stopped_at = time.time()
            self._save()
            event = job.state_change_event()
        self._deliver(event)
        if target in ENDED_STATUSES:
            self._wake.set()

    # --- helpers --------------------------------------------------------------------------------

    @staticmethod
    def _enter(job: ServiceJob, status: str, reason: str | None) -> None:
        job.status, job.status_reason = status, reason

    def _save(self) -> None:
        with self._lock:
            temporary = self._file.with_suffix(".json.tmp")
            temporary.write_text(
                json.dumps([asdict(j) for j in self._jobs.values()], indent=1), encoding="utf-8"
            )
            temporary.replace(self._file)

    def _deliver(self, event: dict[str, Any]) -> None:
        try:
            self._sink(event)
        except (
            Exception
        ):  # a failing handler never stops the queue (EventBridge retries; so does the reconciler)
            logger.exception("Batch service job event handler failed")

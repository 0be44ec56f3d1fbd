"""The local SageMaker: the four training-job operations over SageMaker's JSON 1.1 wire protocol.

``POST /`` with ``X-Amz-Target: SageMaker.<Operation>`` and a JSON body, answered with
``application/x-amz-json-1.1`` and, on error, ``{"__type": <code>, "Message": ...}`` with HTTP
400, which botocore turns into the modelled ``ClientError``. The control plane's boto3 client
reaches it through ``AWS_ENDPOINT_URL_SAGEMAKER``: the same code path as in AWS. Requests are
not signature-checked (loopback only, like moto).
"""

from __future__ import annotations

import base64
import json
import logging
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any

from local_runtime.job_runner import LocalTrainingJobRunner
from local_runtime.loopback_server import LoopbackServer
from local_runtime.sagemaker_jobs import (
    FAILED,
    RESTARTED_REASON,
    STOPPING,
    SageMakerError,
    TrainingJobRecord,
    TrainingJobStore,
    validate_create_request,
    validation_error,
)

logger = logging.getLogger("local_runtime.sagemaker")

TARGET_PREFIX = "SageMaker."
JSON_11 = "application/x-amz-json-1.1"
LIST_SORT_KEYS: dict[str, Callable[[TrainingJobRecord], Any]] = {
    "CreationTime": lambda job: job.creation_time,
    "Name": lambda job: job.name,
    "Status": lambda job: job.status,
}


class LocalSageMaker:
    """The training-job operations, with AWS's request checks and response shapes."""

    def __init__(self, store: TrainingJobStore, runner: LocalTrainingJobRunner, region: str) -> None:
        self._store = store
        self._runner = runner
        self._region = region

    @property
    def store(self) -> TrainingJobStore:
        """The training-job records (the local Batch queue follows its jobs' states here)."""
        return self._store

    def recover_interrupted_jobs(self) -> list[str]:
        """End what is left of jobs that were queued or running when the runtime last stopped (their
        processes, then their records: failed); returns their names."""
        leftovers = self._runner.end_leftover_processes()
        if leftovers:
            logger.warning(
                "ended %d training process(es) left by the previous run: %s", len(leftovers), leftovers
            )
        names = []
        for record in self._store.all():
            if not record.is_terminal:
                record.failure_reason = RESTARTED_REASON
                self._runner.transition(record, FAILED, "Failed", "Training job failed.")
                names.append(record.name)
        return names

    def dispatch(self, operation: str, body: dict[str, Any]) -> dict[str, Any]:
        handlers: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "CreateTrainingJob": self.create_training_job,
            "DescribeTrainingJob": self.describe_training_job,
            "StopTrainingJob": self.stop_training_job,
            "ListTrainingJobs": self.list_training_jobs,
        }
        handler = handlers.get(operation)
        if handler is None:
            raise SageMakerError(
                "UnknownOperationException", f"The local SageMaker does not implement {operation}"
            )
        return handler(body)

    def create_training_job(self, request: dict[str, Any]) -> dict[str, Any]:
        validate_create_request(request)
        record = TrainingJobRecord(request=request, region=self._region)
        record.transitions.append(
            {
                "Status": "Starting",
                "StartTime": record.creation_time,
                "StatusMessage": "Starting the training job",
            }
        )
        self._store.add(record)
        self._runner.submit(record)
        return {"TrainingJobArn": record.arn}

    def describe_training_job(self, request: dict[str, Any]) -> dict[str, Any]:
        return self._store.get(self._job_name(request)).describe()

    def stop_training_job(self, request: dict[str, Any]) -> dict[str, Any]:
        record = self._store.get(self._job_name(request))
        with self._store.lock:
            if record.is_terminal:
                raise validation_error(
                    f"The request was rejected because the training job is in status {record.status}."
                )
            already_stopping = record.stop_requested
            record.stop_requested = True
        if not already_stopping:
            self._runner.transition(record, STOPPING, "Stopping", "Stopping the training job")
            self._runner.request_stop(record)
        return {}

    def list_training_jobs(self, request: dict[str, Any]) -> dict[str, Any]:
        jobs = self._filtered(request)
        sort_by = request.get("SortBy", "CreationTime")
        if sort_by not in LIST_SORT_KEYS:
            raise validation_error(f"Value '{sort_by}' at 'sortBy' must be one of {sorted(LIST_SORT_KEYS)}")
        order = request.get("SortOrder", "Descending")
        if order not in ("Ascending", "Descending"):
            raise validation_error(f"Value '{order}' at 'sortOrder' must be Ascending or Descending")
        jobs.sort(key=LIST_SORT_KEYS[sort_by], reverse=order == "Descending")
        max_results = request.get("MaxResults", 10)
        if not isinstance(max_results, int) or not 1 <= max_results <= 100:
            raise validation_error("Value at 'maxResults' must be between 1 and 100")
        start = self._decode_token(request.get("NextToken"))
        page = jobs[start : start + max_results]
        response: dict[str, Any] = {"TrainingJobSummaries": [job.summary() for job in page]}
        if start + max_results < len(jobs):
            response["NextToken"] = base64.urlsafe_b64encode(str(start + max_results).encode()).decode()
        return response

    def _filtered(self, request: dict[str, Any]) -> list[TrainingJobRecord]:
        jobs = self._store.all()
        if request.get("NameContains"):
            jobs = [job for job in jobs if request["NameContains"] in job.name]
        if request.get("StatusEquals"):
            jobs = [job for job in jobs if job.status == request["StatusEquals"]]
        bounds = {
            "CreationTimeAfter": lambda job, t: job.creation_time > t,
            "CreationTimeBefore": lambda job, t: job.creation_time < t,
            "LastModifiedTimeAfter": lambda job, t: job.last_modified_time > t,
            "LastModifiedTimeBefore": lambda job, t: job.last_modified_time < t,
        }
        for name, keep in bounds.items():
            if request.get(name) is not None:
                jobs = [job for job in jobs if keep(job, float(request[name]))]
        return jobs

    @staticmethod
    def _decode_token(token: str | None) -> int:
        if not token:
            return 0
        try:
            return int(base64.urlsafe_b64decode(token.encode()).decode())
        except ValueError as error:
            raise validation_error("The NextToken is not valid") from error

    @staticmethod
    def _job_name(request: dict[str, Any]) -> str:
        name = request.get("TrainingJobName")
        if not name:
            raise validation_error(
                "1 validation error detected: Value null at 'trainingJobName' failed to satisfy constraint: "
                "Member must not be null"
            )
        return str(name)


class _WireHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: SageMakerWireServer

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("sagemaker %s", format % args)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b"{}"
        target = self.headers.get("X-Amz-Target", "")
        try:
            if not target.startswith(TARGET_PREFIX):
                raise SageMakerError(
                    "UnknownOperationException", f"missing or foreign X-Amz-Target {target!r}"
                )
            try:
                body = json.loads(raw or b"{}")
            except json.JSONDecodeError as error:
                raise SageMakerError(
                    "SerializationException", f"request body is not JSON: {error}"
                ) from error
            if not isinstance(body, dict):
                raise SageMakerError("SerializationException", "request body must be a JSON object")
            self._send(200, self.server.sagemaker.dispatch(target[len(TARGET_PREFIX) :], body))
        except SageMakerError as error:
            self._send(error.http_status, {"__type": error.code, "Message": error.message})
        except Exception as error:
            logger.exception("local SageMaker failed on %s", target)
            self._send(500, {"__type": "InternalFailure", "Message": str(error)})

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", JSON_11)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        self.end_headers()
        self.wfile.write(body)


class SageMakerWireServer(LoopbackServer):
    """The HTTP listener of the local SageMaker."""

    thread_name = "local-sagemaker"

    def __init__(self, sagemaker: LocalSageMaker, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(_WireHandler, host, port)
        self.sagemaker = sagemaker

"""The local SageMaker's training-job records: validation of requests, the AWS-shaped views
(DescribeTrainingJob, ListTrainingJobs summaries, EventBridge state-change events) and their
persistence on disk.

The shapes follow botocore's service model (``sagemaker/2017-07-24/service-2.json``) so the
control plane's unmodified boto3 client cannot tell the difference: errors carry the modelled
codes (``ValidationException``, ``ResourceNotFound``, ``ResourceInUse``), timestamps are epoch
seconds on the wire and epoch milliseconds in events, as AWS sends them.
"""

from __future__ import annotations

import copy
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from functions.domain.sagemaker_states import STATE_CHANGE_DETAIL_TYPE

ACCOUNT_ID = "000000000000"
JOB_NAME_PATTERN = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
S3_URI_PATTERN = re.compile(r"^s3://([^/]+)/?(.*)$")
MAX_FAILURE_REASON_CHARS = 1024
REQUIRED_CREATE_FIELDS = ("TrainingJobName", "RoleArn", "OutputDataConfig")

IN_PROGRESS, COMPLETED, FAILED, STOPPING, STOPPED = "InProgress", "Completed", "Failed", "Stopping", "Stopped"
TERMINAL_JOB_STATUSES = frozenset({COMPLETED, FAILED, STOPPED})
RESTARTED_REASON = "local runtime restarted while the job was running"

EVENT_SOURCE = "aws.sagemaker"
EVENT_DETAIL_TYPE = STATE_CHANGE_DETAIL_TYPE


class SageMakerError(Exception):
    """An error SageMaker would return: ``code`` is the modelled error shape name."""

    def __init__(self, code: str, message: str, http_status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.http_status = http_status


def validation_error(message: str) -> SageMakerError:
    return SageMakerError("ValidationException", message)


def parse_s3_uri(uri: str, field_name: str) -> tuple[str, str]:
    """``s3://bucket/prefix`` -> (bucket, prefix); a ValidationException names the field."""
    match = S3_URI_PATTERN.match(uri or "")
    if not match:
        raise validation_error(
            f"1 validation error detected: Value '{uri}' at '{field_name}' is not an S3 URI"
        )
    return match.group(1), match.group(2)


def validate_create_request(request: dict[str, Any]) -> None:
    """The checks CreateTrainingJob makes before accepting a job, with AWS's message style."""
    missing = [name for name in REQUIRED_CREATE_FIELDS if not request.get(name)]
    if missing:
        raise validation_error(
            f"1 validation error detected: Value null at '{missing[0]}' failed to satisfy "
            "constraint: Member must not be null"
        )
    name = str(request["TrainingJobName"])
    if not JOB_NAME_PATTERN.match(name):
        raise validation_error(
            f"1 validation error detected: Value '{name}' at 'trainingJobName' failed to satisfy constraint: "
            f"Member must satisfy regular expression pattern: {JOB_NAME_PATTERN.pattern}"
        )
    parse_s3_uri(request["OutputDataConfig"].get("S3OutputPath", ""), "outputDataConfig.s3OutputPath")
    for index, channel in enumerate(request.get("InputDataConfig") or []):
        source = channel.get("DataSource", {}).get("S3DataSource", {})
        parse_s3_uri(
            source.get("S3Uri", ""), f"inputDataConfig.{index + 1}.member.dataSource.s3DataSource.s3Uri"
        )
    if request.get("CheckpointConfig"):
        parse_s3_uri(request["CheckpointConfig"].get("S3Uri", ""), "checkpointConfig.s3Uri")
    hyperparameters = request.get("HyperParameters") or {}
    too_long = [key for key, value in hyperparameters.items() if len(str(value)) > 2500]
    if too_long:
        raise validation_error(f"Hyperparameter value of '{too_long[0]}' is longer than 2500 characters")
    max_runtime = (request.get("StoppingCondition") or {}).get("MaxRuntimeInSeconds", 86400)
    if not isinstance(max_runtime, int) or max_runtime < 1:
        raise validation_error("StoppingCondition.MaxRuntimeInSeconds must be a positive integer")


def _now() -> float:
    return time.time()


@dataclass
class TrainingJobRecord:
    """One job as the local SageMaker knows it: the request plus everything Describe reports."""

    request: dict[str, Any]
    region: str
    status: str = IN_PROGRESS
    secondary_status: str = "Starting"
    failure_reason: str | None = None
    creation_time: float = field(default_factory=_now)
    last_modified_time: float = field(default_factory=_now)
    training_start_time: float | None = None
    training_end_time: float | None = None
    transitions: list[dict[str, Any]] = field(default_factory=list)
    model_artifacts_uri: str | None = None
    stop_requested: bool = False

    @property
    def name(self) -> str:
        return str(self.request["TrainingJobName"])

    @property
    def arn(self) -> str:
        return f"arn:aws:sagemaker:{self.region}:{ACCOUNT_ID}:training-job/{self.name.lower()}"

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_JOB_STATUSES

    def enter(self, status: str, secondary: str, message: str) -> None:
        """Move to a new (status, secondary status), closing the previous transition like AWS."""
        now = _now()
        if self.transitions and "EndTime" not in self.transitions[-1]:
            self.transitions[-1]["EndTime"] = now
        self.transitions.append({"Status": secondary, "StartTime": now, "StatusMessage": message})
        self.status, self.secondary_status, self.last_modified_time = status, secondary, now
        if status in TERMINAL_JOB_STATUSES:
            self.transitions[-1]["EndTime"] = now
            self.training_end_time = now

    def describe(self) -> dict[str, Any]:
        """The DescribeTrainingJob response (timestamps as epoch seconds, JSON 1.1 style)."""
        r = self.request
        response: dict[str, Any] = {
            "TrainingJobName": self.name,
            "TrainingJobArn": self.arn,
            "ModelArtifacts": {"S3ModelArtifacts": self.model_artifacts_uri or ""},
            "TrainingJobStatus": self.status,
            "SecondaryStatus": self.secondary_status,
            "HyperParameters": r.get("HyperParameters") or {},
            "AlgorithmSpecification": r.get("AlgorithmSpecification") or {},
            "RoleArn": r["RoleArn"],
            "InputDataConfig": r.get("InputDataConfig") or [],
            "OutputDataConfig": r["OutputDataConfig"],
            "ResourceConfig": r.get("ResourceConfig") or {},
            "StoppingCondition": r.get("StoppingCondition") or {"MaxRuntimeInSeconds": 86400},
            "CreationTime": self.creation_time,
            "LastModifiedTime": self.last_modified_time,
            "SecondaryStatusTransitions": copy.deepcopy(self.transitions),
            "EnableNetworkIsolation": bool(r.get("EnableNetworkIsolation", False)),
            "EnableInterContainerTrafficEncryption": bool(
                r.get("EnableInterContainerTrafficEncryption", False)
            ),
            "EnableManagedSpotTraining": bool(r.get("EnableManagedSpotTraining", False)),
        }
        optional = {
            "FailureReason": self.failure_reason,
            "VpcConfig": r.get("VpcConfig"),
            "CheckpointConfig": r.get("CheckpointConfig"),
            "Environment": r.get("Environment"),
            "TrainingStartTime": self.training_start_time,
            "TrainingEndTime": self.training_end_time,
        }
        response.update({key: value for key, value in optional.items() if value is not None})
        if self.training_start_time is not None:
            end = self.training_end_time or _now()
            seconds = max(0, int(end - self.training_start_time))
            response["TrainingTimeInSeconds"] = seconds
            response["BillableTimeInSeconds"] = seconds
        return response

    def summary(self) -> dict[str, Any]:
        """A ListTrainingJobs ``TrainingJobSummary``."""
        summary: dict[str, Any] = {
            "TrainingJobName": self.name,
            "TrainingJobArn": self.arn,
            "CreationTime": self.creation_time,
            "LastModifiedTime": self.last_modified_time,
            "TrainingJobStatus": self.status,
            "SecondaryStatus": self.secondary_status,
        }
        if self.training_end_time is not None:
            summary["TrainingEndTime"] = self.training_end_time
        return summary

    def state_change_event(self) -> dict[str, Any]:
        """The EventBridge ``SageMaker Training Job State Change`` event AWS emits for this state.

        The detail mirrors DescribeTrainingJob with timestamps in epoch milliseconds and the
        tags as a map, as in AWS's published example events.
        """
        detail = self.describe()
        for key in ("CreationTime", "LastModifiedTime", "TrainingStartTime", "TrainingEndTime"):
            if key in detail:
                detail[key] = int(detail[key] * 1000)
        for transition in detail["SecondaryStatusTransitions"]:
            for key in ("StartTime", "EndTime"):
                if key in transition:
                    transition[key] = int(transition[key] * 1000)
        detail["Tags"] = {tag["Key"]: tag["Value"] for tag in self.request.get("Tags") or []}
        return {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": EVENT_DETAIL_TYPE,
            "source": EVENT_SOURCE,
            "account": ACCOUNT_ID,
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.last_modified_time)),
            "region": self.region,
            "resources": [self.arn],
            "detail": detail,
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "request": self.request,
            "region": self.region,
            "status": self.status,
            "secondary_status": self.secondary_status,
            "failure_reason": self.failure_reason,
            "creation_time": self.creation_time,
            "last_modified_time": self.last_modified_time,
            "training_start_time": self.training_start_time,
            "training_end_time": self.training_end_time,
            "transitions": self.transitions,
            "model_artifacts_uri": self.model_artifacts_uri,
            "stop_requested": self.stop_requested,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrainingJobRecord:
        return cls(**data)


class TrainingJobStore:
    """Thread-safe job records, each saved as ``<folder>/<name>.json`` on every change.

    Saving on every change is what lets a restarted runtime find the jobs that were running
    when it stopped and end them as failed (a child process does not survive its parent).
    """

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self._folder.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._jobs: dict[str, TrainingJobRecord] = {}
        for path in sorted(self._folder.glob("*.json")):
            record = TrainingJobRecord.from_json(json.loads(path.read_text(encoding="utf-8")))
            self._jobs[record.name] = record

    @property
    def lock(self) -> threading.RLock:
        return self._lock

    def add(self, record: TrainingJobRecord) -> None:
        with self._lock:
            if record.name in self._jobs:
                raise SageMakerError(
                    "ResourceInUse",
                    f"Training job names must be unique within an AWS account and region, "
                    f"and a training job with this name already exists ({record.arn})",
                )
            self._jobs[record.name] = record
            self.save(record)

    def get(self, name: str) -> TrainingJobRecord:
        with self._lock:
            record = self._jobs.get(name)
        if record is None:
            raise SageMakerError("ResourceNotFound", f"Requested resource not found: training job {name!r}")
        return record

    def all(self) -> list[TrainingJobRecord]:
        with self._lock:
            return list(self._jobs.values())

    def save(self, record: TrainingJobRecord) -> None:
        with self._lock:
            target = self._folder / f"{record.name}.json"
            temporary = target.with_suffix(".json.tmp")
            temporary.write_text(json.dumps(record.to_json(), indent=1), encoding="utf-8")
            temporary.replace(target)

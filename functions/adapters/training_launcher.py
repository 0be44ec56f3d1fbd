"""SageMaker training jobs: create, describe, stop — and SageMaker's refusals in plain words.

Two launchers share one interface (``TrainingLauncher``): ``SageMakerLauncher`` calls
CreateTrainingJob directly; ``functions.adapters.batch_launcher.BatchLauncher`` submits the same
request to an AWS Batch job queue, where it waits for the deployment's GPU budget.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from botocore.exceptions import ClientError

from functions.adapters.aws_clients import sagemaker_client
from functions.domain.launch_spec import LaunchSpec
from functions.domain.statuses import JobStatus


class LaunchRefused(Exception):
    """SageMaker said no (quota, capacity, validation): the job cannot run as asked."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class TrainingJobState:
    """The parts of DescribeTrainingJob (or of a state-change event) the service acts on."""

    name: str
    status: str  # InProgress | Completed | Failed | Stopping | Stopped (| Queued: batch_queue.QUEUED_STATE)
    secondary_status: str | None
    failure_reason: str | None
    queue_reason: str | None = None  # why a Queued job waits
    # The name SageMaker runs the job under when Batch named it (``name`` stays the service's own
    # job name, which the record is found by); None when it is ``name`` or not known yet.
    training_job_name: str | None = None
    # True when the state comes from a SageMaker event found through its JOB_NAME_TAG rather than
    # from Batch: anyone allowed to create training jobs could set that tag, so the name must be
    # confirmed with Batch before it is trusted (functions.services.job_events.confirmed_by_batch).
    found_by_tag: bool = False


class TrainingLauncher(Protocol):
    """What the use cases need from whatever runs training jobs (direct or queued)."""

    def create(self, spec: LaunchSpec) -> JobStatus:
        """Launch; returns the status the job is now in (STARTING, or QUEUED); LaunchRefused on no."""
        ...

    def describe(self, name: str) -> TrainingJobState | None: ...

    def stop(self, name: str) -> bool:
        """Stop the job; True when it ended without ever starting (no SageMaker event will follow)."""
        ...


def plain_reason(error: ClientError, instance_type: str) -> str:
    """SageMaker's error, rewritten so a user knows what to do."""
    code = error.response["Error"].get("Code", "")
    message = error.response["Error"].get("Message", str(error))
    if code == "ResourceLimitExceeded":
        return (
            f"SageMaker quota reached for {instance_type}: raise the Service Quotas limit "
            f"'{instance_type} for training job usage' (or '{instance_type} for spot training job usage' "
            f"for spot jobs) in this region, or choose another instance type. SageMaker said: {message}"
        )
    if code in ("ThrottlingException", "Throttling"):
        return f"SageMaker is throttling requests; the job was not started. Try again shortly. ({message})"
    if code == "CapacityError" or "capacity" in message.lower():
        return (
            f"SageMaker has no {instance_type} capacity right now; "
            f"try again later or choose another type. ({message})"
        )
    if code == "ValidationException":
        return f"SageMaker refused the job as invalid: {message}"
    return f"SageMaker refused the job ({code}): {message}"


def _s3_channel(name: str, uri: str) -> dict[str, Any]:
    return {
        "ChannelName": name,
        "DataSource": {
            "S3DataSource": {
                "S3DataType": "S3Prefix",
                "S3Uri": uri,
                "S3DataDistributionType": "FullyReplicated",
            }
        },
        "InputMode": "File",
    }


def create_request(spec: LaunchSpec) -> dict[str, Any]:
    """The CreateTrainingJob request (see docs/ARCHITECTURE.md: channels, outputs, spot, isolation)."""
    stopping: dict[str, int] = {"MaxRuntimeInSeconds": spec.max_runtime_seconds}
    if spec.max_wait_seconds is not None:
        stopping["MaxWaitTimeInSeconds"] = spec.max_wait_seconds
    request: dict[str, Any] = {
        "TrainingJobName": spec.job_name,
        "AlgorithmSpecification": {"TrainingImage": spec.image_uri, "TrainingInputMode": "File"},
        "RoleArn": spec.role_arn,
        "HyperParameters": dict(spec.hyperparameters),
        "InputDataConfig": [_s3_channel(c.name, c.s3_uri) for c in spec.channels],
        "OutputDataConfig": {"S3OutputPath": spec.output_uri, "CompressionType": "NONE"},
        "ResourceConfig": {
            "InstanceType": spec.instance_type,
            "InstanceCount": 1,
            "VolumeSizeInGB": spec.volume_size_gb,
        },
        "StoppingCondition": stopping,
        "CheckpointConfig": {"S3Uri": spec.checkpoint_uri},
        "EnableManagedSpotTraining": spec.use_spot,
        "EnableNetworkIsolation": spec.network_isolation,
        "Tags": [{"Key": key, "Value": value} for key, value in spec.tags.items()],
    }
    if spec.subnet_ids and spec.security_group_ids:
        request["VpcConfig"] = {
            "Subnets": list(spec.subnet_ids),
            "SecurityGroupIds": list(spec.security_group_ids),
        }
    return request


class SageMakerLauncher:
    @property
    def _client(self) -> Any:
        return sagemaker_client()

    def create(self, spec: LaunchSpec) -> JobStatus:
        """Start the job (STARTING); LaunchRefused when SageMaker says no.

        ResourceInUse (a CreateTrainingJob error in botocore's sagemaker service-2.json) means a job
        of this name exists. The name is the job's own (deterministic, from its id), so this is a
        botocore retry whose first attempt was accepted but whose answer was lost: the job exists
        and bills, so the launch was accepted.
        """
        try:
            self._client.create_training_job(**create_request(spec))
        except ClientError as error:
            if error.response["Error"].get("Code") == "ResourceInUse" and self.describe(spec.job_name):
                return JobStatus.STARTING
            raise LaunchRefused(plain_reason(error, spec.instance_type)) from error
        return JobStatus.STARTING

    def describe(self, name: str) -> TrainingJobState | None:
        try:
            response = self._client.describe_training_job(TrainingJobName=name)
        except ClientError as error:
            code = error.response["Error"].get("Code", "")
            message = error.response["Error"].get("Message", "")
            not_found = any(p in message.lower() for p in ("not found", "could not find", "does not exist"))
            if code == "ResourceNotFound" or (code == "ValidationException" and not_found):
                return None
            raise
        return TrainingJobState(
            # SageMaker's own spelling (names are found case-insensitively; see BatchLauncher)
            name=str(response.get("TrainingJobName") or name),
            status=str(response["TrainingJobStatus"]),
            secondary_status=response.get("SecondaryStatus"),
            failure_reason=response.get("FailureReason"),
        )

    def stop(self, name: str) -> bool:
        """Ask SageMaker to stop; a job that already ended is not an error. SageMaker's events
        report the end, so this never answers "ended"."""
        try:
            self._client.stop_training_job(TrainingJobName=name)
        except ClientError as error:
            if error.response["Error"].get("Code") not in ("ValidationException", "ResourceNotFound"):
                raise
        return False

"""SageMaker's training-job statuses mapped onto the service's job statuses.

Unknown secondary statuses (SageMaker adds new ones) fall back to the primary status, so they
can never break the service — the original tool's list endpoint broke on them.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from functions.domain.batch_queue import JOB_NAME_TAG, QUEUED_STATE
from functions.domain.statuses import JobStatus

# EventBridge source and detail-type of SageMaker's training-job events (SageMaker developer
# guide, "Events that Amazon SageMaker AI sends to Amazon EventBridge").
STATE_CHANGE_SOURCE = "aws.sagemaker"
STATE_CHANGE_DETAIL_TYPE = "SageMaker Training Job State Change"


class TrainingJobStateDetail(BaseModel):
    """The part of a state-change event's ``detail`` the service acts on.

    The detail is a copy of DescribeTrainingJob's answer; everything else in it is ignored, so a
    field SageMaker adds can never make an event unreadable.
    """

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    name: str = Field(alias="TrainingJobName")
    status: str = Field(alias="TrainingJobStatus")
    secondary_status: str | None = Field(default=None, alias="SecondaryStatus")
    failure_reason: str | None = Field(default=None, alias="FailureReason")
    # The job's tags, a map in the events (the SageMaker developer guide's example "Training job
    # state change" event; ``tags`` in CDK's SageMakerTrainingJobStateChange pattern). Any shape
    # is accepted here: a malformed tag must not make the whole event unreadable.
    tags: Any = Field(default=None, alias="Tags")

    def service_job_name(self) -> str | None:
        """The service's own name for a job Batch renamed (its JOB_NAME_TAG), else None."""
        value = self.tags.get(JOB_NAME_TAG) if isinstance(self.tags, dict) else None
        return value if isinstance(value, str) and value and value != self.name else None


_IN_PROGRESS_SECONDARY: dict[str, JobStatus] = {
    "Training": JobStatus.TRAINING,
    "Uploading": JobStatus.UPLOADING,
}
_PRIMARY: dict[str, JobStatus] = {
    QUEUED_STATE: JobStatus.QUEUED,  # the Batch launcher's word for "still in the job queue"
    "InProgress": JobStatus.STARTING,
    "Completed": JobStatus.COMPLETED,
    "Failed": JobStatus.FAILED,
    "Stopping": JobStatus.STOPPING,
    "Stopped": JobStatus.STOPPED,
}


def job_status_for(status: str, secondary_status: str | None) -> JobStatus | None:
    """The service status for a SageMaker (status, secondary status) pair; None if unknown.

    InProgress with Starting/LaunchingMLInstances/PreparingTrainingStack/Downloading/
    DownloadingTrainingImage/Pending/Restarting/Interrupted (spot) is STARTING: a spot job that was
    interrupted and restarts stays in its later status (transitions never go backwards).
    """
    if status == "InProgress" and secondary_status in _IN_PROGRESS_SECONDARY:
        return _IN_PROGRESS_SECONDARY[secondary_status]
    return _PRIMARY.get(status)


def stop_reason(secondary_status: str | None) -> str | None:
    if secondary_status == "MaxRuntimeExceeded":
        return "stopped by SageMaker: the job reached its maximum runtime (max_runtime_seconds)"
    if secondary_status == "MaxWaitTimeExceeded":
        return "stopped by SageMaker: no spot capacity within the maximum wait time"
    return None

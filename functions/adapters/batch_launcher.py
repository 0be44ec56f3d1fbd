"""Training jobs through an AWS Batch job queue (service jobs of type SAGEMAKER_TRAINING).

The job waits in the queue until the service environment's capacity (the deployment's GPU
budget) has room; Batch then creates the SageMaker training job from the very request a direct
launch would send. Contracts, from botocore's ``batch/2016-08-10/service-2.json`` and the AWS
Batch user guide ("Service job payloads"): ``SubmitServiceJob`` takes ``serviceRequestPayload``,
"a JSON-encoded string that contains the complete request" of CreateTrainingJob, with
``serviceJobType`` SAGEMAKER_TRAINING, ``shareIdentifier`` (required on a fair-share queue),
``schedulingPriority`` (0-9999) and an idempotency ``clientToken`` (1-64 characters);
``ListServiceJobs`` finds a job by its name (filter JOB_NAME); ``DescribeServiceJob`` reports its
status, ``statusReason`` and, once SageMaker has it, ``latestAttempt.serviceResourceId``
(the TrainingJobArn); ``TerminateServiceJob`` (``jobId`` and ``reason`` required) cancels it,
queued or running.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from botocore.exceptions import ClientError

from functions.adapters.aws_clients import batch_client
from functions.adapters.training_launcher import (
    LaunchRefused,
    SageMakerLauncher,
    TrainingJobState,
    create_request,
)
from functions.domain.batch_queue import (
    ENDED_STATUSES,
    QUEUED_STATE,
    SERVICE_JOB_TYPE,
    WAITING_STATUSES,
    waiting_reason,
)
from functions.domain.launch_spec import LaunchSpec
from functions.domain.statuses import JobStatus

STOP_REASON = "stopped by its owner"
# How Batch words the end of a job its queue's jobStateTimeLimitActions terminated (the user guide,
# "Jobs stuck in RUNNABLE due to capacity"): a wait past the deployment's maximum, a failure.
TIME_LIMIT_REASON = "Terminated by JobStateTimeLimit action"


def submit_request(spec: LaunchSpec, job_queue: str) -> dict[str, Any]:
    """The SubmitServiceJob request: the CreateTrainingJob request as payload, plus queueing."""
    request: dict[str, Any] = {
        "jobName": spec.job_name,
        "jobQueue": job_queue,
        "serviceJobType": SERVICE_JOB_TYPE,
        "serviceRequestPayload": json.dumps(create_request(spec)),
        "schedulingPriority": spec.priority,
        # The job's own name: a botocore retry of an accepted submit is the same request, not a
        # second job (SubmitServiceJobRequest.clientToken, at most 64 characters like the name).
        "clientToken": spec.job_name,
        # One attempt: SageMaker's own retries and spot restarts happen inside the training job,
        # and a second Batch attempt would train (and bill) the job again from the start.
        "retryStrategy": {"attempts": 1},
        # No Batch tags: the training job carries the spec's tags (in the payload), and tagging
        # the service job would need batch:TagResource besides.
    }
    if spec.share_identifier:
        request["shareIdentifier"] = spec.share_identifier
    return request


def training_job_arn(job: Mapping[str, Any]) -> str | None:
    """The SageMaker training job Batch created for this service job, once it has."""
    resource = (job.get("latestAttempt") or {}).get("serviceResourceId") or {}
    value = resource.get("value")
    return str(value) if resource.get("name") == "TrainingJobArn" and value else None


def training_job_name(job: Mapping[str, Any]) -> str | None:
    """The name Batch gave the training job (not the payload's TrainingJobName; see
    functions.domain.batch_queue.JOB_NAME_TAG), as its TrainingJobArn spells it.

    SageMaker's ARNs spell names in lower case while S3 keys and log streams keep the name's own
    case, so this is for DescribeTrainingJob and comparisons only; the name itself is
    DescribeTrainingJob's ``TrainingJobName`` (``BatchLauncher.describe``).
    """
    arn = training_job_arn(job)
    return arn.rsplit("/", 1)[-1] if arn else None


def state_of_service_job(job: Mapping[str, Any]) -> TrainingJobState:
    """A DescribeServiceJob answer (or a "Batch Service Job State Change" event's detail, which
    "resembles" it, per the AWS Batch user guide) in the service's terms.

    Waiting in the queue is Queued with Batch's reason; a job that ended in the queue is Stopped
    when terminated (its owner cancelled it) else Failed with Batch's reason; a job SageMaker has
    is reported coarsely (Batch maps SageMaker's states onto its own; SageMaker's events and
    DescribeTrainingJob give the detail).
    """
    name = str(job.get("jobName", ""))
    status = str(job.get("status", ""))
    reason = job.get("statusReason")
    started = training_job_arn(job) is not None
    if status in WAITING_STATUSES or (status == "SCHEDULED" and not started):
        return TrainingJobState(
            name=name,
            status=QUEUED_STATE,
            secondary_status=None,
            failure_reason=None,
            queue_reason=waiting_reason(reason),
        )
    if status == "SUCCEEDED":
        return TrainingJobState(
            name=name,
            status="Completed",
            secondary_status="Completed",
            failure_reason=None,
        )
    if status == "FAILED":
        timed_out = str(reason or "").startswith(TIME_LIMIT_REASON)
        if job.get("isTerminated") and not timed_out:
            return TrainingJobState(
                name=name,
                status="Stopped",
                secondary_status="Stopped",
                failure_reason=None,
            )
        return TrainingJobState(
            name=name,
            status="Failed",
            secondary_status="Failed",
            failure_reason=reason or "AWS Batch failed the job",
        )
    secondary = "Training" if status == "RUNNING" else "Starting"
    return TrainingJobState(name=name, status="InProgress", secondary_status=secondary, failure_reason=None)


class BatchLauncher:
    """Submit, describe and terminate training jobs queued in one Batch job queue."""

    def __init__(self, job_queue: str) -> None:
        self._queue = job_queue
        self._sagemaker = SageMakerLauncher()

    @property
    def _client(self) -> Any:
        return batch_client()

    def create(self, spec: LaunchSpec) -> JobStatus:
        """Queue the job (QUEUED); LaunchRefused when Batch refuses it (ClientException)."""
        try:
            self._client.submit_service_job(**submit_request(spec, self._queue))
        except ClientError as error:
            message = error.response["Error"].get("Message", str(error))
            raise LaunchRefused(f"the training queue refused the job: {message}") from error
        return JobStatus.QUEUED

    def _job(self, name: str) -> dict[str, Any] | None:
        """DescribeServiceJob of the job with this exact name (ListServiceJobs' JOB_NAME filter is
        case-insensitive and lists the newest first)."""
        response = self._client.list_service_jobs(
            jobQueue=self._queue, filters=[{"name": "JOB_NAME", "values": [name]}]
        )
        for summary in response.get("jobSummaryList", []):
            if summary.get("jobName") == name:
                described: dict[str, Any] = self._client.describe_service_job(jobId=summary["jobId"])
                return described
        return None

    def describe(self, name: str) -> TrainingJobState | None:
        """The job as the service sees it: Queued while Batch holds it, SageMaker's state after.

        ``name`` stays the job's own name in the answer: it is what the job record is found by;
        ``training_job_name`` is the name Batch gave the training job, as DescribeTrainingJob
        spells it, once Batch has created it.
        """
        job = self._job(name)
        if job is None:
            return None
        arn_name = training_job_name(job)
        if arn_name is None or str(job.get("status")) in WAITING_STATUSES:
            # Not handed over yet, or back in the queue after a capacity failure (whose training
            # job latestAttempt may still name): Batch's view.
            return state_of_service_job(job)
        training = self._sagemaker.describe(arn_name)
        if training is None:
            # Not found under the ARN's lower-case spelling: Batch's coarser view, and the name as
            # the ARN spells it (a SageMaker event's exact spelling replaces it: job_events).
            return replace(state_of_service_job(job), training_job_name=arn_name)
        return replace(training, name=name, training_job_name=training.name)

    def stop(self, name: str) -> bool:
        """TerminateServiceJob; True when the job never reached SageMaker (it ends here)."""
        job = self._job(name)
        if job is None:
            return False
        if str(job["status"]) not in ENDED_STATUSES:
            self._client.terminate_service_job(jobId=job["jobId"], reason=STOP_REASON)
        return training_job_arn(job) is None

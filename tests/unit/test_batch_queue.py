"""The queued-launch vocabulary: owners' share identifiers, and Batch's service-job states (from
DescribeServiceJob or a "Batch Service Job State Change" event) in the service's terms."""

from __future__ import annotations

from typing import Any

import pytest

from functions.adapters.batch_launcher import state_of_service_job
from functions.domain.batch_queue import QUEUED_STATE, WAITING_REASON, share_identifier
from functions.domain.sagemaker_states import job_status_for
from functions.domain.statuses import JobStatus
from functions.settings import EnvVar, Settings

ARN = "arn:aws:sagemaker:us-east-1:123456789012:training-job/AWSBatchlora-x88b610a69aa8380ca5b0a7aba3f81cb8"


def job(status: str, **extra: Any) -> dict[str, Any]:
    return {"jobName": "lora-01J", "jobId": "id", "status": status, **extra}


def test_share_identifiers_are_stable_alphanumeric_and_distinct_per_owner() -> None:
    alice = share_identifier("arn:aws:iam::123456789012:user/alice")
    assert alice == share_identifier("arn:aws:iam::123456789012:user/alice")
    assert alice != share_identifier("arn:aws:iam::123456789012:user/bob")
    assert alice.isalnum() and len(alice) <= 255


@pytest.mark.parametrize("status", ["SUBMITTED", "PENDING", "RUNNABLE", "SCHEDULED"])
def test_a_job_not_yet_handed_to_sagemaker_is_queued_with_batchs_reason(status: str) -> None:
    state = state_of_service_job(job(status, statusReason="CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY"))
    assert state.status == QUEUED_STATE and job_status_for(state.status, None) is JobStatus.QUEUED
    assert state.queue_reason is not None and "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY" in state.queue_reason
    assert state_of_service_job(job(status)).queue_reason == WAITING_REASON


def test_a_job_ended_in_the_queue_is_stopped_if_its_owner_terminated_it_else_failed() -> None:
    assert state_of_service_job(
        job("FAILED", isTerminated=True, statusReason="stopped by its owner")
    ).status == ("Stopped")
    timed_out = (
        "Terminated by JobStateTimeLimit action due to reason: CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY"
    )
    state = state_of_service_job(job("FAILED", isTerminated=True, statusReason=timed_out))
    assert (state.status, state.failure_reason) == ("Failed", timed_out)


def test_a_job_sagemaker_runs_follows_batchs_mapping() -> None:
    started = {"latestAttempt": {"serviceResourceId": {"name": "TrainingJobArn", "value": ARN}}}
    assert job_status_for(*_pair(job("SCHEDULED", **started))) is JobStatus.STARTING
    assert job_status_for(*_pair(job("STARTING", **started))) is JobStatus.STARTING
    assert job_status_for(*_pair(job("RUNNING", **started))) is JobStatus.TRAINING
    assert job_status_for(*_pair(job("SUCCEEDED", **started))) is JobStatus.COMPLETED
    assert job_status_for(*_pair(job("FAILED", statusReason="boom", **started))) is JobStatus.FAILED


def _pair(detail: dict[str, Any]) -> tuple[str, str | None]:
    state = state_of_service_job(detail)
    return state.status, state.secondary_status


def test_the_launcher_setting_is_checked_and_named() -> None:
    assert Settings.from_env({}).training_launcher == "direct"
    assert Settings.from_env({EnvVar.TRAINING_LAUNCHER: "queue"}).training_launcher == "queue"
    with pytest.raises(ValueError, match="TRAINING_LAUNCHER"):
        Settings.from_env({EnvVar.TRAINING_LAUNCHER: "batch"})
    with pytest.raises(RuntimeError, match="TRAINING_JOB_QUEUE"):
        Settings.from_env({EnvVar.TRAINING_LAUNCHER: "queue"}).require("training_job_queue")

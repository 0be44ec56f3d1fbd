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


def test_a_batch_renamed_training_jobs_event_is_read_under_the_services_own_name() -> None:
    from functions.domain.batch_queue import JOB_NAME_TAG
    from functions.events.handler import state_from_event

    def event(name: str, tags: Any) -> dict[str, Any]:
        return {
            "version": "0",
            "id": "e",
            "detail-type": "SageMaker Training Job State Change",
            "source": "aws.sagemaker",
            "account": "123456789012",
            "time": "2026-11-25T00:00:00Z",
            "region": "us-east-1",
            "resources": [],
            "detail": {"TrainingJobName": name, "TrainingJobStatus": "InProgress", "Tags": tags},
        }

    renamed = state_from_event(event("AWSBatchX1", {JOB_NAME_TAG: "lora-01J"}))
    assert renamed is not None
    assert (renamed.name, renamed.training_job_name, renamed.found_by_tag) == ("lora-01J", "AWSBatchX1", True)
    direct = state_from_event(event("lora-01J", {JOB_NAME_TAG: "lora-01J"}))  # a direct launch's own tag
    assert direct is not None and (direct.name, direct.training_job_name, direct.found_by_tag) == (
        "lora-01J",
        None,
        False,
    )
    for odd in (None, [], {JOB_NAME_TAG: 7}, "x"):  # a malformed tag never makes an event unreadable
        state = state_from_event(event("AWSBatchX1", odd))
        assert state is not None and state.name == "AWSBatchX1" and not state.found_by_tag


def test_a_training_job_name_from_sagemaker_wins_over_an_arns_lower_case_spelling() -> None:
    from functions.domain.batch_queue import newer_training_job_name

    assert newer_training_job_name(None, "awsbatchx1") == "awsbatchx1"  # only the ARN known yet
    assert newer_training_job_name("awsbatchx1", "AWSBatchX1") == "AWSBatchX1"  # SageMaker's spelling
    assert newer_training_job_name("AWSBatchX1", "awsbatchx1") is None  # never back to the ARN's
    assert newer_training_job_name("AWSBatchX1", "AWSBatchX1") is None
    assert newer_training_job_name("AWSBatchX1", None) is None
    assert newer_training_job_name("AWSBatchX1", "AWSBatchY2") == "AWSBatchY2"  # a new attempt's job


def test_batchs_own_view_never_names_the_training_job_by_its_arn() -> None:
    """A TrainingJobArn spells the name in lower case; S3 keys and log streams do not."""
    attempt = {"serviceResourceId": {"name": "TrainingJobArn", "value": ARN}}
    assert state_of_service_job(job("RUNNING", latestAttempt=attempt)).training_job_name is None

"""Trainings on a queued deployment: the real handlers with ``BatchLauncher``, whose Batch client
is under botocore's Stubber, so every request is checked against botocore's batch service model
(``batch/2016-08-10/service-2.json``) and answered as Batch answers.

QUEUED with the reason it waits; the owner's cap counts queued jobs; a queued job is stopped
with TerminateServiceJob and ends STOPPED at once (it never reached SageMaker); Batch's
"Batch Service Job State Change" events update the reason and end jobs Batch gave up on.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from functions.adapters.aws_clients import batch_client
from functions.adapters.batch_launcher import STOP_REASON, BatchLauncher
from functions.domain.batch_queue import JOB_NAME_TAG, WAITING_REASON, share_identifier
from functions.domain.storage_layout import (
    SAGEMAKER_TRAINING_LOG_GROUP,
    training_log_stream_prefix,
    training_output_prefix,
)
from functions.services.context import ServiceContext, service_context
from functions.settings import EnvVar
from tests.integration.conftest import ApiCaller, sagemaker_event, send_event
from tests.integration.workflow import put_lora_output, ready_inputs, safetensors_bytes, training_body

QUEUE = "arn:aws:batch:us-east-1:123456789012:job-queue/lora-trainings"
SERVICE_JOB_ID = "0bb17543-ece6-4480-b1a7-a556d344746b"


@pytest.fixture
def queued_ctx(aws_emulator: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[ServiceContext]:
    # As the stack sets them (the IAM check resolves the queue's ARN in the template from these).
    monkeypatch.setenv(EnvVar.TRAINING_LAUNCHER, "queue")
    monkeypatch.setenv(EnvVar.TRAINING_JOB_QUEUE, QUEUE)
    ctx = service_context()
    original_settings, original_launcher = ctx.settings, ctx.launcher
    ctx.settings = dataclasses.replace(
        original_settings,
        training_launcher="queue",
        training_job_queue=QUEUE,
        max_concurrent_jobs_per_owner=1,
    )
    ctx.launcher = BatchLauncher(QUEUE)
    yield ctx
    ctx.settings, ctx.launcher = original_settings, original_launcher


@pytest.fixture
def batch_stub(queued_ctx: ServiceContext) -> Iterator[Stubber]:
    with Stubber(batch_client()) as stub:
        yield stub
        stub.assert_no_pending_responses()


def service_job(name: str, status: str, **extra: Any) -> dict[str, Any]:
    """DescribeServiceJob's answer for a job still in the queue (no latestAttempt yet)."""
    return {
        "jobId": SERVICE_JOB_ID,
        "jobArn": f"arn:aws:batch:us-east-1:123456789012:service-job/{SERVICE_JOB_ID}",
        "jobName": name,
        "jobQueue": QUEUE,
        "serviceJobType": "SAGEMAKER_TRAINING",
        "startedAt": 0,
        "status": status,
        **extra,
    }


def queue_a_job(api: ApiCaller, batch_stub: Stubber, **extra: Any) -> dict[str, Any]:
    model_id, dataset_id = ready_inputs(api)
    batch_stub.add_response(
        "submit_service_job",
        {
            "jobArn": "arn:aws:batch:us-east-1:123456789012:service-job/x",
            "jobName": "x",
            "jobId": SERVICE_JOB_ID,
        },
        {
            "jobName": ANY,
            "jobQueue": QUEUE,
            "serviceJobType": "SAGEMAKER_TRAINING",
            "serviceRequestPayload": ANY,
            "shareIdentifier": share_identifier(api.owner),
            "schedulingPriority": extra.get("priority", 0),
            "clientToken": ANY,
            "retryStrategy": {"attempts": 1},
        },
    )
    status, job = api("POST", "/trainings", training_body(model_id, dataset_id, **extra))
    assert status == 201, job
    return dict(job)


def test_a_queued_launch_waits_with_its_reason_and_the_request_sagemaker_would_get(
    api: ApiCaller, batch_stub: Stubber
) -> None:
    captured: list[dict[str, Any]] = []
    batch_client().meta.events.register(
        "provide-client-params.batch.SubmitServiceJob", lambda params, **_: captured.append(dict(params))
    )
    job = queue_a_job(api, batch_stub, priority=7)
    assert job["status"] == "QUEUED" and job["queue_reason"] == WAITING_REASON
    assert [h["status"] for h in job["history"]] == ["QUEUED"]
    payload = json.loads(captured[-1]["serviceRequestPayload"])
    assert payload["TrainingJobName"] == captured[-1]["jobName"] == captured[-1]["clientToken"]
    assert payload["ResourceConfig"]["InstanceType"] == "ml.g5.2xlarge"
    assert captured[-1]["schedulingPriority"] == 7


def test_the_owner_cap_counts_queued_jobs(api: ApiCaller, batch_stub: Stubber) -> None:
    queue_a_job(api, batch_stub)
    model_id, dataset_id = ready_inputs(api)
    status, body = api("POST", "/trainings", training_body(model_id, dataset_id))
    assert status == 429, body  # one queued job is the cap of 1: the queue cannot be flooded


def test_a_queued_job_is_stopped_at_once_and_never_starts(api: ApiCaller, batch_stub: Stubber) -> None:
    job = queue_a_job(api, batch_stub)
    name = job["sagemaker_job_name"]
    batch_stub.add_response(
        "list_service_jobs",
        {
            "jobSummaryList": [
                {"jobId": SERVICE_JOB_ID, "jobName": name, "serviceJobType": "SAGEMAKER_TRAINING"}
            ]
        },
        {"jobQueue": QUEUE, "filters": [{"name": "JOB_NAME", "values": [name]}]},
    )
    batch_stub.add_response("describe_service_job", service_job(name, "RUNNABLE"), {"jobId": SERVICE_JOB_ID})
    batch_stub.add_response("terminate_service_job", {}, {"jobId": SERVICE_JOB_ID, "reason": STOP_REASON})
    status, stopped = api("POST", f"/trainings/{job['id']}/stop")
    assert status == 200, stopped
    assert stopped["status"] == "STOPPED"
    assert [h["status"] for h in stopped["history"]] == ["QUEUED", "STOPPING", "STOPPED"]
    # Its slot is free again: the owner may queue another job.
    assert queue_a_job(api, batch_stub)["status"] == "QUEUED"


def batch_event(name: str, status: str, **detail: Any) -> dict[str, Any]:
    """An EventBridge "Batch Service Job State Change" event, shaped as the user guide's example."""
    return {
        "version": "0",
        "id": "c8f9c4b5-76e5-d76a-f980-7011e206042b",
        "detail-type": "Batch Service Job State Change",
        "source": "aws.batch",
        "account": "123456789012",
        "time": "2022-01-11T23:36:40Z",
        "region": "us-east-1",
        "resources": [f"arn:aws:batch:us-east-1:123456789012:service-job/{SERVICE_JOB_ID}"],
        "detail": {**service_job(name, status), "createdAt": 1641944200058, **detail},
    }


def test_batch_events_update_the_reason_and_end_a_job_that_waited_too_long(
    api: ApiCaller, batch_stub: Stubber
) -> None:
    job = queue_a_job(api, batch_stub)
    name = job["sagemaker_job_name"]
    capacity = "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY - Unable to provision requested compute resources"
    assert send_event(batch_event(name, "RUNNABLE", statusReason=capacity)) == {"applied": None}
    _, waiting = api("GET", f"/trainings/{job['id']}")
    assert waiting["status"] == "QUEUED" and capacity in waiting["queue_reason"]
    gave_up = "Terminated by JobStateTimeLimit action due to reason: CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY"
    send_event(batch_event(name, "FAILED", statusReason=gave_up, isTerminated=True))
    _, failed = api("GET", f"/trainings/{job['id']}")
    assert failed["status"] == "FAILED" and failed["failure_reason"] == gave_up
    assert failed["queue_reason"] is None


def test_the_reconciler_repairs_a_queued_job_whose_events_were_lost(
    api: ApiCaller, batch_stub: Stubber, queued_ctx: ServiceContext
) -> None:
    from datetime import UTC, datetime

    from functions.domain.records import TrainingJobRecord
    from functions.services.reconciliation import reconcile_job

    job = queue_a_job(api, batch_stub)
    name = job["sagemaker_job_name"]
    gave_up = "Terminated by JobStateTimeLimit action due to reason: CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY"
    batch_stub.add_response(
        "list_service_jobs",
        {
            "jobSummaryList": [
                {"jobId": SERVICE_JOB_ID, "jobName": name, "serviceJobType": "SAGEMAKER_TRAINING"}
            ]
        },
        {"jobQueue": QUEUE, "filters": [{"name": "JOB_NAME", "values": [name]}]},
    )
    batch_stub.add_response(
        "describe_service_job",
        service_job(name, "FAILED", statusReason=gave_up, isTerminated=True),
        {"jobId": SERVICE_JOB_ID},
    )
    record = queued_ctx.repository.get(TrainingJobRecord, job["id"], api.owner)
    assert reconcile_job(queued_ctx, record, datetime.now(UTC)) == "repaired"
    _, failed = api("GET", f"/trainings/{job['id']}")
    assert failed["status"] == "FAILED" and failed["failure_reason"] == gave_up


# Batch creates the training job under a name of its own (functions.domain.batch_queue.JOB_NAME_TAG):
# AWSBatch<...> in SageMaker's spelling, lower-cased in the TrainingJobArn Batch reports.
BATCH_NAME = "AWSBatch0bb17543ece64480b1a7a556d344746b"
BATCH_ARN = f"arn:aws:sagemaker:us-east-1:123456789012:training-job/{BATCH_NAME.lower()}"


def started_service_job(name: str, status: str = "RUNNING") -> dict[str, Any]:
    """DescribeServiceJob's answer once Batch has handed the job to SageMaker."""
    attempt = {"serviceResourceId": {"name": "TrainingJobArn", "value": BATCH_ARN}}
    return service_job(name, status, latestAttempt=attempt, attempts=[attempt], startedAt=1641944300000)


def expect_batch_lookup(batch_stub: Stubber, name: str, answer: dict[str, Any]) -> None:
    batch_stub.add_response(
        "list_service_jobs",
        {
            "jobSummaryList": [
                {"jobId": SERVICE_JOB_ID, "jobName": name, "serviceJobType": "SAGEMAKER_TRAINING"}
            ]
        },
        {"jobQueue": QUEUE, "filters": [{"name": "JOB_NAME", "values": [name]}]},
    )
    batch_stub.add_response("describe_service_job", answer, {"jobId": SERVICE_JOB_ID})


def described_training(name: str, status: str, secondary: str) -> dict[str, Any]:
    from datetime import UTC, datetime

    return {
        "TrainingJobName": name,
        "TrainingJobArn": BATCH_ARN,
        "ModelArtifacts": {"S3ModelArtifacts": "s3://bucket/out"},
        "TrainingJobStatus": status,
        "SecondaryStatus": secondary,
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        "CreationTime": datetime.now(UTC),
    }


def renamed_event(
    job: dict[str, Any], status: str, secondary: str, training_name: str = BATCH_NAME
) -> dict[str, Any]:
    """SageMaker's event for the job Batch created: Batch's name, the payload's tags."""
    event = sagemaker_event(training_name, status, secondary)
    event["detail"]["Tags"] = {
        "lora:job-id": job["id"],
        JOB_NAME_TAG: job["sagemaker_job_name"],
    }
    return event


def test_a_job_batch_renamed_is_followed_by_its_events_and_its_lora_registered(
    api: ApiCaller, batch_stub: Stubber, sagemaker_stub: Any
) -> None:
    """Before the fix, SageMaker's events for AWSBatch<...> were "an unknown job" and the LoRA was
    looked for under the service's own job name: the job never completed."""
    job = queue_a_job(api, batch_stub)
    name = job["sagemaker_job_name"]
    # The tag alone is not trusted: Batch confirms this is the training job it created for ours.
    expect_batch_lookup(batch_stub, name, started_service_job(name))
    sagemaker_stub.add_response(
        "describe_training_job",
        described_training(BATCH_NAME, "InProgress", "Starting"),
        {"TrainingJobName": BATCH_NAME.lower()},
    )
    assert send_event(renamed_event(job, "InProgress", "Starting")) == {"applied": "STARTING"}
    _, started = api("GET", f"/trainings/{job['id']}")
    assert started["training_job_name"] == BATCH_NAME and started["queue_reason"] is None

    put_lora_output(job, safetensors_bytes(128), training_output_prefix(api.owner, job["id"]), BATCH_NAME)
    # The name is known now: the next events need no lookup (the stubs would fail on one).
    send_event(renamed_event(job, "InProgress", "Training"))
    assert send_event(renamed_event(job, "Completed", "Completed")) == {"applied": "COMPLETED"}
    _, done = api("GET", f"/trainings/{job['id']}")
    assert done["status"] == "COMPLETED", done
    assert done["output"]["lora_model_id"] == job["id"]
    status, model = api("GET", f"/models/{job['id']}")
    assert status == 200 and model["status"] == "ready", model
    assert model["filename"] == f"{name}.safetensors"  # named after the service's job, not Batch's


def test_a_training_job_merely_tagged_as_ours_is_ignored(
    api: ApiCaller, batch_stub: Stubber, sagemaker_stub: Any
) -> None:
    """Anyone allowed to create training jobs could copy the tag: Batch names the real one."""
    job = queue_a_job(api, batch_stub)
    name = job["sagemaker_job_name"]
    expect_batch_lookup(batch_stub, name, started_service_job(name))
    sagemaker_stub.add_response(
        "describe_training_job",
        described_training(BATCH_NAME, "InProgress", "Starting"),
        {"TrainingJobName": BATCH_NAME.lower()},
    )
    impostor = renamed_event(job, "Completed", "Completed", training_name="someone-elses-job")
    assert send_event(impostor) == {"applied": None}
    _, unchanged = api("GET", f"/trainings/{job['id']}")
    assert unchanged["status"] == "QUEUED" and unchanged["training_job_name"] is None


def test_a_batch_event_naming_the_training_job_records_it_and_logs_are_read_under_it(
    api: ApiCaller, batch_stub: Stubber, sagemaker_stub: Any
) -> None:
    """Batch's own event gives only the ARN: SageMaker's view and spelling come from Describe*; the
    logs route then reads SageMaker's streams, which carry Batch's name."""
    job = queue_a_job(api, batch_stub)
    name = job["sagemaker_job_name"]
    expect_batch_lookup(batch_stub, name, started_service_job(name))
    sagemaker_stub.add_response(
        "describe_training_job",
        described_training(BATCH_NAME, "InProgress", "Training"),
        {"TrainingJobName": BATCH_NAME.lower()},
    )
    event = batch_event(name, "RUNNING", latestAttempt=started_service_job(name)["latestAttempt"])
    assert send_event(event) == {"applied": "TRAINING"}
    _, training = api("GET", f"/trainings/{job['id']}")
    assert training["training_job_name"] == BATCH_NAME

    logs = boto3.client("logs")
    with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
        logs.create_log_group(logGroupName=SAGEMAKER_TRAINING_LOG_GROUP)
    stream = f"{training_log_stream_prefix(BATCH_NAME)}algo-1-1732500000"
    logs.create_log_stream(logGroupName=SAGEMAKER_TRAINING_LOG_GROUP, logStreamName=stream)
    logs.put_log_events(
        logGroupName=SAGEMAKER_TRAINING_LOG_GROUP,
        logStreamName=stream,
        logEvents=[{"timestamp": int(time.time() * 1000), "message": "epoch 1/2"}],
    )
    status, page = api("GET", f"/trainings/{job['id']}/logs")
    assert status == 200 and [line["message"] for line in page["lines"]] == ["epoch 1/2"]


def test_a_capacity_failure_of_batchs_training_job_does_not_end_the_job(
    api: ApiCaller, batch_stub: Stubber, sagemaker_stub: Any
) -> None:
    """Batch puts a job whose training job failed with a CapacityError back in RUNNABLE (the user
    guide, "Jobs stuck in RUNNABLE due to capacity"): SageMaker's Failed is not the job's end;
    Batch's FAILED, once it gives up, is."""
    job = queue_a_job(api, batch_stub)
    name = job["sagemaker_job_name"]
    failed = renamed_event(job, "Failed", "Failed")
    failed["detail"]["FailureReason"] = "CapacityError: Unable to provision requested ML compute capacity"
    assert send_event(failed) == {"applied": None}  # no lookup, no change
    _, waiting = api("GET", f"/trainings/{job['id']}")
    assert waiting["status"] == "QUEUED"

    # Back in the queue: Batch's view wins over the failed attempt latestAttempt still names.
    retrying = started_service_job(name, "RUNNABLE")
    retrying["statusReason"] = (
        "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY - Unable to provision requested compute resources"
    )
    expect_batch_lookup(batch_stub, name, retrying)
    state = BatchLauncher(QUEUE).describe(name)
    assert state is not None and state.status == "Queued" and "CAPACITY" in str(state.queue_reason)


def test_the_owner_cap_counts_queued_and_running_jobs_together(
    api: ApiCaller, batch_stub: Stubber, queued_ctx: ServiceContext
) -> None:
    from functions.domain.records import TrainingJobRecord
    from functions.domain.statuses import JobStatus
    from functions.services.job_transitions import move_job

    queued_ctx.settings = dataclasses.replace(queued_ctx.settings, max_concurrent_jobs_per_owner=2)
    first = queue_a_job(api, batch_stub)
    record = queued_ctx.repository.get(TrainingJobRecord, first["id"], api.owner)
    assert move_job(queued_ctx, record, JobStatus.TRAINING, cause="test", detail="running") is not None
    second = queue_a_job(api, batch_stub)
    assert second["status"] == "QUEUED"  # one running + one queued = the cap of 2
    model_id, dataset_id = ready_inputs(api)
    status, body = api("POST", "/trainings", training_body(model_id, dataset_id))
    assert status == 429, body

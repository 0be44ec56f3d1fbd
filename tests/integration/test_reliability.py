"""Guarantees for paid work: no double spend, no orphan or stuck job, monotonic status, limits."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from functions.adapters.training_launcher import TrainingJobState
from functions.domain.records import TrainingJobRecord
from functions.domain.statuses import TERMINAL_STATUSES, JobStatus
from functions.domain.storage_layout import training_output_prefix
from functions.services.context import ServiceContext, service_context
from functions.services.reconciliation import reconcile
from tests.integration.conftest import ApiCaller, sagemaker_event, send_event
from tests.integration.workflow import put_lora_output, ready_inputs, safetensors_bytes, training_body


def sagemaker_jobs_named(name_fragment: str) -> list[str]:
    response = boto3.client("sagemaker").list_training_jobs(NameContains=name_fragment, MaxResults=100)
    return [j["TrainingJobName"] for j in response["TrainingJobSummaries"]]


@pytest.fixture
def ctx(aws_emulator: str) -> ServiceContext:
    return service_context()


@pytest.fixture
def tuned(ctx: ServiceContext) -> Iterator[Any]:
    """Change deployment settings for one test."""
    original = ctx.settings

    def tune(**changes: Any) -> None:
        ctx.settings = dataclasses.replace(original, **changes)

    yield tune
    ctx.settings = original


class TestIdempotency:
    def test_a_retried_request_returns_the_same_job(self, api: ApiCaller) -> None:
        model_id, dataset_id = ready_inputs(api)
        key = {"Idempotency-Key": str(uuid.uuid4())}
        first = api("POST", "/trainings", training_body(model_id, dataset_id), headers=key)
        again = api("POST", "/trainings", training_body(model_id, dataset_id), headers=key)
        assert first[0] == again[0] == 201
        assert first[1]["id"] == again[1]["id"]
        assert len(sagemaker_jobs_named(first[1]["id"])) == 1
        assert len(api("GET", "/trainings")[1]["items"]) == 1

    def test_concurrent_retries_start_exactly_one_sagemaker_job(
        self, api: ApiCaller, tuned: Any, ctx: ServiceContext
    ) -> None:
        tuned(max_concurrent_jobs_per_owner=50)
        model_id, dataset_id = ready_inputs(api)
        key = {"Idempotency-Key": str(uuid.uuid4())}
        with ThreadPoolExecutor(max_workers=8) as pool:
            results = list(
                pool.map(
                    lambda _: api("POST", "/trainings", training_body(model_id, dataset_id), headers=key),
                    range(8),
                )
            )
        statuses = sorted(status for status, _ in results)
        assert set(statuses) <= {201, 409}, results
        job_ids = {body["id"] for status, body in results if status == 201}
        assert len(job_ids) == 1
        listed = api("GET", "/trainings")[1]["items"]
        assert [j["id"] for j in listed] == list(job_ids)
        assert len(sagemaker_jobs_named(next(iter(job_ids)))) == 1
        for status, body in results:
            if status == 409:
                assert body["error"]["code"] == "REQUEST_IN_PROGRESS"

    def test_same_key_with_another_body_is_refused(self, api: ApiCaller) -> None:
        model_id, dataset_id = ready_inputs(api)
        key = {"Idempotency-Key": str(uuid.uuid4())}
        assert api("POST", "/trainings", training_body(model_id, dataset_id), headers=key)[0] == 201
        status, error = api(
            "POST", "/trainings", training_body(model_id, dataset_id, name="other"), headers=key
        )
        assert status == 409 and error["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"

    def test_keys_are_per_caller(self, api: ApiCaller, other_api: ApiCaller) -> None:
        key = {"Idempotency-Key": "shared-key-" + uuid.uuid4().hex}
        mine = ready_inputs(api)
        theirs = ready_inputs(other_api)
        a = api("POST", "/trainings", training_body(*mine), headers=key)
        b = other_api("POST", "/trainings", training_body(*theirs), headers=key)
        assert a[0] == b[0] == 201 and a[1]["id"] != b[1]["id"]


class TestLaunchFaults:
    @pytest.mark.parametrize(
        ("code", "message", "expected"),
        [
            (
                "ResourceLimitExceeded",
                "The account-level service limit 'ml.g5.2xlarge for training job usage' is 0",
                "raise the Service Quotas limit 'ml.g5.2xlarge for training job usage'",
            ),
            ("ThrottlingException", "Rate exceeded", "throttling"),
            ("ValidationException", "Invalid RoleArn", "refused the job as invalid: Invalid RoleArn"),
            ("InternalFailure", "oops", "refused the job (InternalFailure)"),
        ],
    )
    def test_a_refusal_ends_failed_with_the_reason(
        self, api: ApiCaller, sagemaker_stub: Any, code: str, message: str, expected: str
    ) -> None:
        model_id, dataset_id = ready_inputs(api)
        status_code = 429 if code == "ThrottlingException" else 400
        for _ in range(
            4 if code in ("ThrottlingException", "InternalFailure") else 1
        ):  # botocore retries these
            sagemaker_stub.add_client_error(
                "create_training_job", code, message, http_status_code=status_code
            )
        status, job = api("POST", "/trainings", training_body(model_id, dataset_id))
        assert status == 201
        assert job["status"] == "FAILED"
        assert expected in job["failure_reason"]
        assert [h["status"] for h in job["history"]] == ["FAILED"]

    def test_a_retried_create_that_finds_its_own_job_is_accepted(
        self, api: ApiCaller, sagemaker_stub: Any
    ) -> None:
        """botocore retried CreateTrainingJob after a lost answer: ResourceInUse, but the job is ours."""
        model_id, dataset_id = ready_inputs(api)
        sagemaker_stub.add_client_error(
            "create_training_job", "ResourceInUse", "Training job names must be unique", http_status_code=400
        )
        sagemaker_stub.add_response(
            "describe_training_job",
            {
                "TrainingJobName": "named-by-the-job",
                "TrainingJobArn": "arn:aws:sagemaker:us-east-1:123456789012:training-job/named-by-the-job",
                "ModelArtifacts": {"S3ModelArtifacts": "s3://bucket/out"},
                "TrainingJobStatus": "InProgress",
                "SecondaryStatus": "Starting",
                "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
                "CreationTime": datetime.now(UTC),
            },
        )
        status, job = api("POST", "/trainings", training_body(model_id, dataset_id))
        assert status == 201 and job["status"] == "STARTING", job
        sagemaker_stub.assert_no_pending_responses()

    def test_a_crash_after_sagemaker_accepted_is_tracked_by_the_reconciler(
        self, api: ApiCaller, ctx: ServiceContext, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        model_id, dataset_id = ready_inputs(api)
        real = ctx.repository.transition_job

        def crash_on_starting(job_id: str, target: JobStatus, **kw: Any) -> Any:
            if target is JobStatus.STARTING:
                raise ClientError(
                    {"Error": {"Code": "InternalServerError", "Message": "DynamoDB down"}}, "UpdateItem"
                )
            return real(job_id, target, **kw)

        monkeypatch.setattr(ctx.repository, "transition_job", crash_on_starting)
        status, error = api("POST", "/trainings", training_body(model_id, dataset_id))
        assert status == 500 and error["error"]["code"] == "INTERNAL_ERROR"
        monkeypatch.setattr(ctx.repository, "transition_job", real)
        (job,) = api("GET", "/trainings")[1]["items"]
        assert job["status"] == "PENDING"
        assert sagemaker_jobs_named(job["id"]) == [job["sagemaker_job_name"]]  # running, but not yet tracked
        reconcile(ctx)
        assert api("GET", f"/trainings/{job['id']}")[1]["status"] not in ("PENDING",)

    def test_a_launch_that_never_reached_sagemaker_is_failed_by_the_reconciler(
        self, api: ApiCaller, ctx: ServiceContext, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        model_id, dataset_id = ready_inputs(api)

        def lambda_timeout(*args: Any, **kw: Any) -> None:
            raise TimeoutError("Task timed out after 30.00 seconds")

        monkeypatch.setattr(ctx.launcher, "create", lambda_timeout)
        assert api("POST", "/trainings", training_body(model_id, dataset_id))[0] == 500
        monkeypatch.undo()
        (job,) = api("GET", "/trainings")[1]["items"]
        reconcile(ctx)  # too recent: it may still be launching
        assert api("GET", f"/trainings/{job['id']}")[1]["status"] == "PENDING"
        reconcile(ctx, now=datetime.now(UTC) + timedelta(minutes=10))
        repaired = api("GET", f"/trainings/{job['id']}")[1]
        assert repaired["status"] == "FAILED" and "never reached SageMaker" in repaired["failure_reason"]

    def test_a_job_stopped_before_it_reached_sagemaker_is_stopped_by_the_reconciler(
        self, api: ApiCaller, ctx: ServiceContext, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        model_id, dataset_id = ready_inputs(api)

        def lambda_timeout(*args: Any, **kw: Any) -> None:
            raise TimeoutError("Task timed out after 30.00 seconds")

        monkeypatch.setattr(ctx.launcher, "create", lambda_timeout)
        assert api("POST", "/trainings", training_body(model_id, dataset_id))[0] == 500
        monkeypatch.undo()
        (job,) = api("GET", "/trainings")[1]["items"]
        monkeypatch.setattr(ctx.launcher, "stop", lambda name: None)  # SageMaker: no such job
        assert api("POST", f"/trainings/{job['id']}/stop")[1]["status"] == "STOPPING"
        assert len(ctx.repository.active_jobs(api.owner)) == 1
        counts = reconcile(ctx, now=datetime.now(UTC) + timedelta(minutes=10))
        assert counts["stopped-unlaunched"] == 1
        assert api("GET", f"/trainings/{job['id']}")[1]["status"] == "STOPPED"
        assert ctx.repository.active_jobs(api.owner) == []  # its slot is free again

    def test_a_stop_that_arrives_before_create_training_job_stops_the_launched_job(
        self, api: ApiCaller, ctx: ServiceContext, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        model_id, dataset_id = ready_inputs(api)
        real_create, stopped = ctx.launcher.create, list[str]()

        def stop_arrives_first(spec: Any) -> None:
            (pending,) = ctx.repository.active_jobs(api.owner)
            assert api("POST", f"/trainings/{pending.id}/stop")[1]["status"] == "STOPPING"
            real_create(spec)

        monkeypatch.setattr(ctx.launcher, "create", stop_arrives_first)
        monkeypatch.setattr(ctx.launcher, "stop", stopped.append)  # moto lacks StopTrainingJob
        status, job = api("POST", "/trainings", training_body(model_id, dataset_id))
        assert status == 201 and job["status"] == "STOPPING"
        # once by the stop request (nothing to stop yet), once by the launch that came after it
        assert stopped == [job["sagemaker_job_name"]] * 2

    def test_the_reconciler_applies_lost_events(
        self, api: ApiCaller, ctx: ServiceContext, sagemaker_stub: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        model_id, dataset_id = ready_inputs(api)
        sagemaker_stub.add_response(
            "create_training_job", {"TrainingJobArn": "arn:aws:sagemaker:us-east-1:1:training-job/x"}
        )
        _, job = api("POST", "/trainings", training_body(model_id, dataset_id))
        put_lora_output(job, safetensors_bytes(128), training_output_prefix(api.owner, job["id"]))

        def describe(name: str) -> TrainingJobState | None:  # every event of this job was lost
            return (
                TrainingJobState(name, "Completed", "Completed", None)
                if name == job["sagemaker_job_name"]
                else None
            )

        monkeypatch.setattr(ctx.launcher, "describe", describe)
        counts = reconcile(ctx)
        assert counts["repaired"] >= 1 and counts["errors"] == 0
        done = api("GET", f"/trainings/{job['id']}")[1]
        assert done["status"] == "COMPLETED" and done["output"]["lora_model_id"] == job["id"]
        assert reconcile(ctx)["repaired"] == 0  # idempotent: nothing left to repair for it

    def test_a_crash_while_registering_the_lora_leaves_no_bytes_uncounted(
        self, api: ApiCaller, ctx: ServiceContext, sagemaker_stub: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        model_id, dataset_id = ready_inputs(api)
        sagemaker_stub.add_response(
            "create_training_job", {"TrainingJobArn": "arn:aws:sagemaker:us-east-1:1:training-job/x"}
        )
        _, job = api("POST", "/trainings", training_body(model_id, dataset_id))
        lora = safetensors_bytes(128)
        put_lora_output(job, lora, training_output_prefix(api.owner, job["id"]))
        before = ctx.repository.storage_used(api.owner)

        def describe(name: str) -> TrainingJobState | None:
            done = TrainingJobState(name, "Completed", "Completed", None)
            return done if name == job["sagemaker_job_name"] else None

        def crash(*args: Any, **kw: Any) -> None:  # the Lambda dies right after the model is stored
            raise TimeoutError("Task timed out")

        monkeypatch.setattr(ctx.launcher, "describe", describe)
        real_reserve = ctx.repository.reserve_storage
        monkeypatch.setattr(ctx.repository, "reserve_storage", crash)
        reconcile(ctx)
        monkeypatch.setattr(ctx.repository, "reserve_storage", real_reserve)
        reconcile(ctx)  # the retry
        assert api("GET", f"/trainings/{job['id']}")[1]["status"] == "COMPLETED"
        lora_model = api("GET", f"/models/{job['id']}")[1]
        assert (
            ctx.repository.storage_used(api.owner) == before + lora_model["size_bytes"] == before + len(lora)
        )


class TestEventOrdering:
    EVENTS = [
        ("InProgress", "Starting"),
        ("InProgress", "Downloading"),
        ("InProgress", "Training"),
        ("InProgress", "Uploading"),
        ("Completed", "Completed"),
        ("Stopping", "Stopping"),
        ("Stopped", "Stopped"),
        ("Failed", "Failed"),
        ("InProgress", "Restarting"),
    ]

    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
    @given(order=st.lists(st.integers(min_value=0, max_value=8), min_size=1, max_size=12))
    def test_any_event_sequence_only_moves_forward(self, aws_emulator: str, order: list[int]) -> None:
        api = ApiCaller(f"arn:aws:iam::123456789012:user/order-{uuid.uuid4().hex[:8]}")
        ctx = service_context()
        job = _job_without_launch(ctx, api.owner)
        put_lora_output(
            job.model_dump(mode="json"), safetensors_bytes(64), training_output_prefix(api.owner, job.id)
        )
        rank = {
            JobStatus.PENDING: 0,
            JobStatus.STARTING: 1,
            JobStatus.TRAINING: 2,
            JobStatus.UPLOADING: 3,
            JobStatus.STOPPING: 4,
        }
        seen: list[JobStatus] = [job.status]
        for index in order:
            status, secondary = self.EVENTS[index]
            send_event(
                sagemaker_event(
                    job.sagemaker_job_name, status, secondary, "boom" if status == "Failed" else None
                )
            )
            current = ctx.repository.get(TrainingJobRecord, job.id, None).status
            previous = seen[-1]
            if previous in TERMINAL_STATUSES:
                assert current == previous  # terminal is final
            elif current not in TERMINAL_STATUSES:
                assert rank[current] >= rank[previous] or (
                    previous is JobStatus.STOPPING and current is JobStatus.STOPPING
                )
                if previous is JobStatus.STOPPING:
                    assert current is JobStatus.STOPPING
            seen.append(current)
        final = ctx.repository.get(TrainingJobRecord, job.id, None)
        statuses_in_history = [h.status for h in final.history]
        assert len(statuses_in_history) == len(set(statuses_in_history))  # no status recorded twice
        if final.status is JobStatus.COMPLETED:
            assert final.output is not None

    def test_stop_racing_with_completion_ends_in_one_state(self, api: ApiCaller, sagemaker_stub: Any) -> None:
        model_id, dataset_id = ready_inputs(api)
        sagemaker_stub.add_response(
            "create_training_job", {"TrainingJobArn": "arn:aws:sagemaker:us-east-1:1:training-job/x"}
        )
        _, job = api("POST", "/trainings", training_body(model_id, dataset_id))
        put_lora_output(job, safetensors_bytes(64), training_output_prefix(api.owner, job["id"]))
        send_event(sagemaker_event(job["sagemaker_job_name"], "Completed"))
        status, error = api("POST", f"/trainings/{job['id']}/stop")  # arrives after completion
        assert status == 409 and "COMPLETED" in error["error"]["message"]
        send_event(sagemaker_event(job["sagemaker_job_name"], "Stopped"))  # a late, contradictory event
        assert api("GET", f"/trainings/{job['id']}")[1]["status"] == "COMPLETED"


def _job_without_launch(ctx: ServiceContext, owner: str) -> TrainingJobRecord:
    """A STARTING job record as POST /trainings leaves it (the launch itself is not under test)."""
    from functions.domain.catalog import FmType
    from functions.domain.ids import new_id, utc_now
    from functions.domain.kohya_params import defaults_for
    from functions.domain.planning import TrainingPlan
    from functions.domain.storage_layout import sagemaker_job_name
    from functions.domain.training_contract import Engine

    job_id, now = new_id(), utc_now()
    record = TrainingJobRecord(
        id=job_id,
        owner=owner,
        name="order",
        fm_type=FmType.SD15,
        base_model_id=new_id(),
        dataset_id=new_id(),
        instance_type="ml.g5.2xlarge",
        use_spot=False,
        max_runtime_seconds=3600,
        engine=Engine.DIFFUSERS,
        config=defaults_for(FmType.SD15),
        plan=TrainingPlan(
            images_per_epoch=1,
            steps_per_epoch=1,
            epochs=1,
            total_steps=1,
            estimated_seconds=1,
            estimated_cost_usd=0.0,
            estimated_spot_cost_usd=0.0,
            price_per_hour_usd=1.0,
        ),
        status=JobStatus.STARTING,
        sagemaker_job_name=sagemaker_job_name(ctx.settings.job_name_prefix, job_id),
        created_at=now,
        updated_at=now,
    )
    ctx.repository.create(record)
    return record


class TestLimits:
    def test_concurrent_job_cap(self, api: ApiCaller, tuned: Any) -> None:
        tuned(max_concurrent_jobs_per_owner=1)
        model_id, dataset_id = ready_inputs(api)
        assert api("POST", "/trainings", training_body(model_id, dataset_id))[0] == 201
        status, error = api("POST", "/trainings", training_body(model_id, dataset_id))
        assert status == 429 and "limit is 1" in error["error"]["message"]

    def test_storage_cap(self, api: ApiCaller, tuned: Any) -> None:
        tuned(max_storage_bytes_per_owner=1000)
        body = {"name": "big", "fm_type": "sd15", "filename": "big.safetensors", "size_bytes": 800}
        assert api("POST", "/models", body)[0] == 201
        status, error = api("POST", "/models", body)
        assert status == 429 and "storage limit" in error["error"]["message"]

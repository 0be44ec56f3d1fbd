"""The local SageMaker over its wire protocol, driven by a real boto3 client.

The job runner runs ``fake_container.py`` (same folder contract as the real entrypoint, no
torch), so these tests check the protocol, the job life cycle, the S3 copies and the
EventBridge events in seconds.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from functions.domain.storage_layout import SAGEMAKER_TRAINING_LOG_GROUP
from local_runtime.aws_emulator import FAKE_ACCESS_KEY_ID, FAKE_SECRET_ACCESS_KEY, AwsEmulator, ResourceNames
from local_runtime.job_runner import LocalTrainingJobRunner, RunnerOptions
from local_runtime.log_shipping import MAX_MESSAGE_BYTES, restore_journals
from local_runtime.sagemaker_jobs import EVENT_DETAIL_TYPE, EVENT_SOURCE, RESTARTED_REASON, TrainingJobStore
from local_runtime.sagemaker_server import LocalSageMaker, SageMakerWireServer

REGION = "us-east-1"
FAKE_CONTAINER = (sys.executable, str(Path(__file__).with_name("fake_container.py")))
NAMES = ResourceNames(table="t", idempotency_table="ti", bucket="sm-test-bucket")
TERMINAL = ("Completed", "Failed", "Stopped")


@pytest.fixture(scope="module")
def emulator() -> Iterator[AwsEmulator]:
    aws = AwsEmulator(REGION)
    aws.start()
    aws.create_resources(NAMES)
    yield aws
    aws.stop()


@dataclass
class LocalSageMakerFixture:
    client: Any
    s3: Any
    events: list[dict[str, Any]]
    store_dir: Path
    runner: LocalTrainingJobRunner

    def wait_terminal(
        self, name: str, timeout: float = 300
    ) -> dict[str, Any]:  # generous: CI machines are busy
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job: dict[str, Any] = self.client.describe_training_job(TrainingJobName=name)
            if job["TrainingJobStatus"] in TERMINAL:
                return job
            time.sleep(0.1)
        raise AssertionError(f"{name} did not finish in {timeout}s")


def start_sagemaker(
    emulator: AwsEmulator, store_dir: Path, events: list[dict[str, Any]], **options: Any
) -> tuple[LocalSageMaker, SageMakerWireServer, LocalTrainingJobRunner]:
    store = TrainingJobStore(store_dir / "jobs")
    runner = LocalTrainingJobRunner(
        store,
        emulator.client("s3"),
        store_dir / "work",
        events.append,
        RunnerOptions(
            container_command=FAKE_CONTAINER, checkpoint_sync_seconds=0.2, stop_grace_seconds=3, **options
        ),
        logs_client=emulator.client("logs"),
    )
    service = LocalSageMaker(store, runner, REGION)
    server = SageMakerWireServer(service)
    server.start()
    return service, server, runner


EMPTY_CHANNEL_JOB = "job-empty"  # the one job whose dataset channel is left without objects


def sagemaker_client(url: str, s3: Any | None = None) -> Any:
    """A client of the local SageMaker; with ``s3``, each job's dataset channel gets a file first
    (a job whose channel has no objects fails, as in SageMaker)."""
    client = boto3.client(
        "sagemaker",
        endpoint_url=url,
        region_name=REGION,
        aws_access_key_id=FAKE_ACCESS_KEY_ID,
        aws_secret_access_key=FAKE_SECRET_ACCESS_KEY,
    )
    if s3 is not None:

        def seed_channels(params: dict[str, Any], **_: Any) -> None:
            if params["TrainingJobName"] == EMPTY_CHANNEL_JOB:
                return
            for channel in params.get("InputDataConfig") or []:
                bucket, prefix = channel["DataSource"]["S3DataSource"]["S3Uri"][5:].split("/", 1)
                if not s3.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1).get("KeyCount"):
                    s3.put_object(Bucket=bucket, Key=f"{prefix}1_cat/seed.png", Body=b"png")

        client.meta.events.register("provide-client-params.sagemaker.CreateTrainingJob", seed_channels)
    return client


@pytest.fixture
def sagemaker(emulator: AwsEmulator, tmp_path: Path) -> Iterator[LocalSageMakerFixture]:
    events: list[dict[str, Any]] = []
    _, server, runner = start_sagemaker(emulator, tmp_path, events)
    s3 = emulator.client("s3")
    yield LocalSageMakerFixture(sagemaker_client(server.endpoint_url, s3), s3, events, tmp_path, runner)
    server.stop()
    runner.shutdown()


def job_request(name: str, behaviour: str = "succeed", max_runtime: int = 60) -> dict[str, Any]:
    bucket = NAMES.bucket
    return {
        "TrainingJobName": name,
        "AlgorithmSpecification": {"TrainingImage": "local/lora:latest", "TrainingInputMode": "File"},
        "RoleArn": "arn:aws:iam::000000000000:role/training",
        "HyperParameters": {"behaviour": behaviour, "job_id": name},
        "InputDataConfig": [
            {
                "ChannelName": "dataset",
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": f"s3://{bucket}/datasets/{name}/files/",
                    }
                },
                "InputMode": "File",
            }
        ],
        "OutputDataConfig": {
            "S3OutputPath": f"s3://{bucket}/trainings/{name}/output",
            "CompressionType": "NONE",
        },
        "ResourceConfig": {"InstanceType": "ml.g5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 50},
        "StoppingCondition": {"MaxRuntimeInSeconds": max_runtime},
        "CheckpointConfig": {"S3Uri": f"s3://{bucket}/trainings/{name}/checkpoints/"},
        "Tags": [{"Key": "lora:job-id", "Value": name}],
    }


def test_completed_job_downloads_channels_syncs_checkpoints_and_uploads_the_model(
    sagemaker: LocalSageMakerFixture,
) -> None:
    sagemaker.s3.put_object(Bucket=NAMES.bucket, Key="datasets/job-ok/files/1_cat/a.png", Body=b"png")
    arn = sagemaker.client.create_training_job(**job_request("job-ok"))["TrainingJobArn"]
    assert arn == "arn:aws:sagemaker:us-east-1:000000000000:training-job/job-ok"

    job = sagemaker.wait_terminal("job-ok")

    assert job["TrainingJobStatus"] == "Completed" and job["SecondaryStatus"] == "Completed"
    assert [t["Status"] for t in job["SecondaryStatusTransitions"]] == [
        "Starting",
        "Downloading",
        "Training",
        "Uploading",
        "Completed",
    ]
    artifacts = f"s3://{NAMES.bucket}/trainings/job-ok/output/job-ok/output/model/"
    assert job["ModelArtifacts"]["S3ModelArtifacts"] == artifacts
    model = sagemaker.s3.get_object(
        Bucket=NAMES.bucket, Key="trainings/job-ok/output/job-ok/output/model/out.safetensors"
    )
    assert model["Body"].read() == b"fake lora"
    progress = sagemaker.s3.get_object(Bucket=NAMES.bucket, Key="trainings/job-ok/checkpoints/progress.json")
    assert (
        b'"files": ["a.png"]' in progress["Body"].read()
    )  # the dataset channel arrived under its relative path
    hyperparameters = sagemaker.store_dir / "work/job-ok/opt_ml/input/config/hyperparameters.json"
    assert '"behaviour": "succeed"' in hyperparameters.read_text()


def test_events_have_the_eventbridge_shape_in_order(sagemaker: LocalSageMakerFixture) -> None:
    sagemaker.client.create_training_job(**job_request("job-events"))
    sagemaker.wait_terminal("job-events")
    time.sleep(0.2)  # the final event is delivered right after the status is saved

    events = [e for e in sagemaker.events if e["detail"]["TrainingJobName"] == "job-events"]
    assert [e["detail"]["SecondaryStatus"] for e in events] == [
        "Starting",
        "Downloading",
        "Training",
        "Uploading",
        "Completed",
    ]
    assert [e["detail"]["TrainingJobStatus"] for e in events][-2:] == ["InProgress", "Completed"]
    last = events[-1]
    assert last["source"] == EVENT_SOURCE and last["detail-type"] == EVENT_DETAIL_TYPE
    assert last["resources"] == [last["detail"]["TrainingJobArn"]]
    assert (
        isinstance(last["detail"]["CreationTime"], int) and last["detail"]["CreationTime"] > 1_600_000_000_000
    )
    assert last["detail"]["Tags"] == {"lora:job-id": "job-events"}
    assert last["detail"]["ModelArtifacts"]["S3ModelArtifacts"].endswith("/job-events/output/model/")


def test_a_dataset_channel_without_objects_fails_the_job_as_sagemaker_does(
    sagemaker: LocalSageMakerFixture,
) -> None:
    sagemaker.client.create_training_job(**job_request(EMPTY_CHANNEL_JOB))
    job = sagemaker.wait_terminal(EMPTY_CHANNEL_JOB)
    assert job["TrainingJobStatus"] == "Failed"
    uri = f"s3://{NAMES.bucket}/datasets/{EMPTY_CHANNEL_JOB}/files/"
    assert job["FailureReason"].startswith(f'ClientError: No S3 objects found under S3 URL "{uri}"')


def test_failed_job_reports_the_failure_file(sagemaker: LocalSageMakerFixture) -> None:
    sagemaker.client.create_training_job(**job_request("job-bad", behaviour="fail"))
    job = sagemaker.wait_terminal("job-bad")
    assert job["TrainingJobStatus"] == "Failed"
    assert job["FailureReason"] == "the dataset has no images (fake container)"


def test_stop_sends_sigterm_and_ends_stopped_with_checkpoints_synced(
    sagemaker: LocalSageMakerFixture,
) -> None:
    sagemaker.client.create_training_job(**job_request("job-stop", behaviour="sleep"))
    deadline = time.monotonic() + 10
    while sagemaker.client.describe_training_job(TrainingJobName="job-stop")["SecondaryStatus"] != "Training":
        assert time.monotonic() < deadline
        time.sleep(0.05)

    sagemaker.client.stop_training_job(TrainingJobName="job-stop")
    assert sagemaker.client.describe_training_job(TrainingJobName="job-stop")["TrainingJobStatus"] in (
        "Stopping",
        "Stopped",
    )
    job = sagemaker.wait_terminal("job-stop")

    assert (job["TrainingJobStatus"], job["SecondaryStatus"]) == ("Stopped", "Stopped")
    saved = sagemaker.s3.get_object(Bucket=NAMES.bucket, Key="trainings/job-stop/checkpoints/state.bin")
    assert saved["Body"].read() == b"resume"
    with pytest.raises(ClientError) as stopped_twice:
        sagemaker.client.stop_training_job(TrainingJobName="job-stop")
    assert stopped_twice.value.response["Error"]["Code"] == "ValidationException"


def test_a_stop_racing_completion_keeps_the_finished_model(sagemaker: LocalSageMakerFixture) -> None:
    sagemaker.client.create_training_job(**job_request("job-race", behaviour="finish_despite_stop"))
    ready = sagemaker.store_dir / "work/job-race/opt_ml/checkpoints/ready"
    deadline = time.monotonic() + 30
    while not ready.exists():  # the container's SIGTERM handler is in place
        assert time.monotonic() < deadline
        time.sleep(0.05)
    sagemaker.client.stop_training_job(TrainingJobName="job-race")
    job = sagemaker.wait_terminal("job-race")
    assert job["TrainingJobStatus"] == "Completed"
    key = "trainings/job-race/output/job-race/output/model/out.safetensors"
    assert sagemaker.s3.get_object(Bucket=NAMES.bucket, Key=key)["Body"].read() == b"fake lora"


def test_max_runtime_stops_the_job(sagemaker: LocalSageMakerFixture) -> None:
    sagemaker.client.create_training_job(**job_request("job-slow", behaviour="sleep", max_runtime=1))
    job = sagemaker.wait_terminal("job-slow")
    assert (job["TrainingJobStatus"], job["SecondaryStatus"]) == ("Stopped", "MaxRuntimeExceeded")


def test_errors_have_the_modelled_codes(sagemaker: LocalSageMakerFixture) -> None:
    def code_of(call: Any, **kwargs: Any) -> str:
        with pytest.raises(ClientError) as error:
            call(**kwargs)
        return str(error.value.response["Error"]["Code"])

    sagemaker.client.create_training_job(**job_request("job-dup"))
    assert code_of(sagemaker.client.create_training_job, **job_request("job-dup")) == "ResourceInUse"
    assert code_of(sagemaker.client.describe_training_job, TrainingJobName="missing") == "ResourceNotFound"
    assert code_of(sagemaker.client.stop_training_job, TrainingJobName="missing") == "ResourceNotFound"
    assert code_of(sagemaker.client.create_training_job, **job_request("bad_name!")) == "ValidationException"
    bad_output = {**job_request("job-bad-uri"), "OutputDataConfig": {"S3OutputPath": "not-s3"}}
    assert code_of(sagemaker.client.create_training_job, **bad_output) == "ValidationException"
    assert code_of(sagemaker.client.list_training_jobs, SortBy="Nope") == "ValidationException"


def test_list_filters_sorts_and_paginates(sagemaker: LocalSageMakerFixture) -> None:
    for index in range(3):
        sagemaker.client.create_training_job(**job_request(f"list-{index}", behaviour="fail"))
        sagemaker.wait_terminal(f"list-{index}")
    sagemaker.client.create_training_job(**job_request("other-0"))
    sagemaker.wait_terminal("other-0")

    first = sagemaker.client.list_training_jobs(NameContains="list-", MaxResults=2)
    second = sagemaker.client.list_training_jobs(
        NameContains="list-", MaxResults=2, NextToken=first["NextToken"]
    )
    names = [s["TrainingJobName"] for s in first["TrainingJobSummaries"] + second["TrainingJobSummaries"]]
    assert names == ["list-2", "list-1", "list-0"]  # newest first by default
    assert "NextToken" not in second
    completed = sagemaker.client.list_training_jobs(StatusEquals="Completed")["TrainingJobSummaries"]
    assert [s["TrainingJobName"] for s in completed] == ["other-0"]
    summary = first["TrainingJobSummaries"][0]
    assert {"TrainingJobName", "TrainingJobArn", "CreationTime", "TrainingJobStatus"} <= set(summary)


def test_jobs_running_at_restart_are_failed_with_a_reason(emulator: AwsEmulator, tmp_path: Path) -> None:
    events: list[dict[str, Any]] = []
    _, server, runner = start_sagemaker(emulator, tmp_path, events)
    client = sagemaker_client(server.endpoint_url, emulator.client("s3"))
    client.create_training_job(**job_request("job-crash", behaviour="sleep"))
    server.stop()
    # Simulate a crash: the record stays non-terminal on disk while the child is killed.
    runner._shutting_down.set()
    runner.shutdown()
    record_file = tmp_path / "jobs" / "job-crash.json"
    text = record_file.read_text()
    for status in ("Failed", "Stopped"):
        text = text.replace(f'"status": "{status}"', '"status": "InProgress"')
    record_file.write_text(text)

    restarted_events: list[dict[str, Any]] = []
    service, server2, runner2 = start_sagemaker(emulator, tmp_path, restarted_events)
    try:
        assert service.recover_interrupted_jobs() == ["job-crash"]
        job = sagemaker_client(server2.endpoint_url).describe_training_job(TrainingJobName="job-crash")
        assert job["TrainingJobStatus"] == "Failed" and job["FailureReason"] == RESTARTED_REASON
        assert restarted_events[-1]["detail"]["TrainingJobStatus"] == "Failed"
    finally:
        server2.stop()
        runner2.shutdown()


def stream_messages(logs: Any, group: str, prefix: str) -> dict[str, list[str]]:
    streams = logs.describe_log_streams(logGroupName=group, logStreamNamePrefix=prefix)["logStreams"]
    return {
        s["logStreamName"]: [
            e["message"]
            for e in logs.get_log_events(
                logGroupName=group, logStreamName=s["logStreamName"], startFromHead=True
            )["events"]
        ]
        for s in streams
    }


def test_container_output_goes_to_cloudwatch_logs_and_the_log_file(
    sagemaker: LocalSageMakerFixture, emulator: AwsEmulator
) -> None:
    sagemaker.client.create_training_job(**job_request("logged-job"))
    sagemaker.wait_terminal("logged-job")

    logs = emulator.client("logs")
    streams = stream_messages(logs, SAGEMAKER_TRAINING_LOG_GROUP, "logged-job/")
    [(stream, messages)] = streams.items()
    assert re.fullmatch(r"logged-job/algo-1-\d{10}", stream)  # SageMaker's stream naming
    assert messages[:3] == ["fake container: training", "steps: 1/2", "steps: 2/2"]
    long_line = "".join(messages[3:])
    assert long_line == "fake container: saved " + "x" * 100_000 and len(messages) > 4
    assert all(len(m.encode()) <= MAX_MESSAGE_BYTES for m in messages)
    log_file = (sagemaker.store_dir / "work" / "logged-job" / "container.log").read_bytes()
    assert b"steps: 1/2\rsteps: 2/2\n" in log_file  # the raw output is kept too

    # A restarted runtime (fresh emulator memory) gets the same events back from the journals.
    restored = restore_journals(logs, "/restored/TrainingJobs", sagemaker.runner.log_journals())
    assert restored >= len(messages)
    assert stream_messages(logs, "/restored/TrainingJobs", "logged-job/") == streams

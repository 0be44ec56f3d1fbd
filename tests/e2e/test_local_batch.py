"""The local AWS Batch job queue in front of the local SageMaker, driven by real boto3 clients.

The queue hands jobs to the local SageMaker, whose runner runs ``fake_container.py`` (milliseconds
per job), so these tests check the queue's contract in seconds: capacity, fair share between
owners, terminate while queued, a waiting job starting when a slot frees, and a restart that
neither loses nor duplicates a queued job. The control plane's ``BatchLauncher`` talks to the same
wire server, so its request shapes are checked against botocore's batch model too.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from functions.adapters import aws_clients
from functions.adapters.batch_launcher import BatchLauncher
from functions.domain.batch_queue import QUEUED_STATE, share_identifier
from local_runtime.aws_emulator import FAKE_ACCESS_KEY_ID, FAKE_SECRET_ACCESS_KEY, AwsEmulator
from local_runtime.batch_jobs import CAPACITY_REASON, BatchError, ServiceJobQueue
from local_runtime.batch_server import BatchWireServer, LocalBatch
from local_runtime.job_runner import LocalTrainingJobRunner
from local_runtime.sagemaker_jobs import SageMakerError
from local_runtime.sagemaker_server import LocalSageMaker, SageMakerWireServer
from tests.e2e.test_local_sagemaker import (
    REGION,
    emulator,  # noqa: F401 - the module-scoped emulator fixture
    job_request,
    start_sagemaker,
)

QUEUE = "arn:aws:batch:us-east-1:000000000000:job-queue/lora-test"
ENDED = ("SUCCEEDED", "FAILED")


@dataclass
class LocalBatchStack:
    """The local SageMaker and the local Batch queue in front of it, over their wire servers."""

    sagemaker: LocalSageMaker
    sagemaker_server: SageMakerWireServer
    runner: LocalTrainingJobRunner
    queue: ServiceJobQueue
    server: BatchWireServer
    client: Any
    events: list[dict[str, Any]]

    def submit(self, name: str, owner: str, behaviour: str = "succeed", priority: int = 0) -> str:
        response = self.client.submit_service_job(
            jobName=name,
            jobQueue=QUEUE,
            serviceJobType="SAGEMAKER_TRAINING",
            serviceRequestPayload=json.dumps(job_request(name, behaviour)),
            shareIdentifier=share_identifier(owner),
            schedulingPriority=priority,
        )
        return str(response["jobId"])

    def describe(self, job_id: str) -> dict[str, Any]:
        job: dict[str, Any] = self.client.describe_service_job(jobId=job_id)
        return job

    def wait(self, job_id: str, statuses: tuple[str, ...], timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout  # generous: CI machines are busy
        while time.monotonic() < deadline:
            job = self.describe(job_id)
            if job["status"] in statuses:
                return job
            time.sleep(0.05)
        raise AssertionError(
            f"{job_id} did not reach {statuses} in {timeout}s: {self.describe(job_id)}\n"
            f"SageMaker's side: {self.training_jobs()}"
        )

    def training_jobs(self) -> list[tuple[str, str, str, bool]]:
        """Each training job's status, secondary status and whether a stop was asked for: when a
        service job does not follow, this says whether SageMaker or the queue is behind."""
        return [(r.name, r.status, r.secondary_status, r.stop_requested) for r in self.sagemaker.store.all()]

    def stop(self) -> None:
        self.server.stop()
        self.queue.stop()
        self.sagemaker_server.stop()
        self.runner.shutdown()


def start_stack(emulator: AwsEmulator, folder: Path, capacity: int, *, run: bool = True) -> LocalBatchStack:  # noqa: F811
    events: list[dict[str, Any]] = []
    sagemaker, sagemaker_server, runner = start_sagemaker(emulator, folder, events, max_concurrent_jobs=3)
    s3 = emulator.client("s3")

    def start_training(payload: dict[str, Any]) -> str:
        for channel in payload.get("InputDataConfig") or []:  # a job with an empty channel fails
            bucket, prefix = channel["DataSource"]["S3DataSource"]["S3Uri"][5:].split("/", 1)
            s3.put_object(Bucket=bucket, Key=f"{prefix}1_cat/seed.png", Body=b"png")
        try:
            return str(sagemaker.create_training_job(payload)["TrainingJobArn"])
        except SageMakerError as refused:
            raise BatchError(refused.message) from refused

    def training_status(name: str) -> tuple[str, str] | None:
        try:
            record = sagemaker.store.get(name)
        except SageMakerError:
            return None
        return record.status, record.secondary_status

    queue = ServiceJobQueue(
        folder / "batch",
        capacity=capacity,
        region=REGION,
        start_training=start_training,
        training_status=training_status,
        stop_training=lambda name: sagemaker.stop_training_job({"TrainingJobName": name}),
        event_sink=events.append,
    )
    server = BatchWireServer(LocalBatch(queue))
    server.start()
    client = boto3.client(
        "batch",
        endpoint_url=server.endpoint_url,
        region_name=REGION,
        aws_access_key_id=FAKE_ACCESS_KEY_ID,
        aws_secret_access_key=FAKE_SECRET_ACCESS_KEY,
    )
    stack = LocalBatchStack(sagemaker, sagemaker_server, runner, queue, server, client, events)
    if run:
        queue.start()
    return stack


@pytest.fixture
def stacks(emulator: AwsEmulator, tmp_path: Path) -> Iterator[list[LocalBatchStack]]:  # noqa: F811
    started: list[LocalBatchStack] = []
    yield started
    for stack in started:
        stack.stop()


def training_name(stack: LocalBatchStack, job_name: str) -> str:
    """The name the queue gave the training job it created for this service job (not ours)."""
    (job,) = [j for j in stack.queue.all() if j.job_name == job_name]
    return job.training_job_name


def training_interval(stack: LocalBatchStack, name: str) -> tuple[float, float]:
    record = stack.sagemaker.store.get(training_name(stack, name))
    assert record.training_end_time is not None
    return record.creation_time, record.training_end_time


def test_capacity_one_runs_three_jobs_one_at_a_time_in_fair_share_order(
    emulator: AwsEmulator,  # noqa: F811
    tmp_path: Path,
    stacks: list[LocalBatchStack],
) -> None:
    stack = start_stack(emulator, tmp_path, capacity=1, run=False)
    stacks.append(stack)
    # Alice queues two jobs before Bob queues one: fair share runs Bob's before Alice's second.
    ids = {
        name: stack.submit(name, owner)
        for name, owner in (("a-1", "alice"), ("a-2", "alice"), ("b-1", "bob"))
    }
    stack.queue.start()
    for job_id in ids.values():
        assert stack.wait(job_id, ENDED)["status"] == "SUCCEEDED"
    intervals = {name: training_interval(stack, name) for name in ids}
    order = sorted(intervals, key=lambda name: intervals[name][0])
    assert order == ["a-1", "b-1", "a-2"]
    for earlier, later in itertools.pairwise(order):
        assert intervals[later][0] >= intervals[earlier][1], "two jobs ran at once on a budget of 1"


def test_a_queued_job_can_be_stopped_and_never_starts(
    emulator: AwsEmulator,  # noqa: F811
    tmp_path: Path,
    stacks: list[LocalBatchStack],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stack = start_stack(emulator, tmp_path, capacity=1)
    stacks.append(stack)
    running = stack.submit("run-1", "alice", behaviour="sleep")
    stack.wait(running, ("RUNNING",))
    queued = stack.submit("wait-1", "bob")
    waiting = stack.wait(queued, ("RUNNABLE",))
    assert waiting["statusReason"] == CAPACITY_REASON

    # The control plane's launcher over the same wire: Queued with Batch's reason, then stopped.
    monkeypatch.setenv("AWS_ENDPOINT_URL_BATCH", stack.server.endpoint_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", FAKE_ACCESS_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", FAKE_SECRET_ACCESS_KEY)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    aws_clients.batch_client.cache_clear()
    try:
        launcher = BatchLauncher(QUEUE)
        state = launcher.describe("wait-1")
        assert (
            state is not None and state.status == QUEUED_STATE and CAPACITY_REASON in str(state.queue_reason)
        )
        assert launcher.stop("wait-1") is True  # it never reached SageMaker
    finally:
        aws_clients.batch_client.cache_clear()
    ended = stack.describe(queued)
    assert ended["status"] == "FAILED" and ended["isTerminated"] is True
    assert "latestAttempt" not in ended

    stack.client.terminate_service_job(jobId=running, reason="test over")  # frees the only slot
    assert stack.wait(running, ENDED)["status"] == "FAILED"
    time.sleep(1)  # several scheduler ticks with a free slot
    assert stack.describe(queued)["status"] == "FAILED"
    with pytest.raises(SageMakerError):
        stack.sagemaker.store.get(training_name(stack, "wait-1"))  # SageMaker never heard of it
    assert [e["detail"]["status"] for e in stack.events if e["detail"].get("jobId") == queued] == ["FAILED"]


def test_a_job_waiting_for_capacity_starts_when_a_slot_frees(
    emulator: AwsEmulator,  # noqa: F811
    tmp_path: Path,
    stacks: list[LocalBatchStack],
) -> None:
    stack = start_stack(emulator, tmp_path, capacity=1)
    stacks.append(stack)
    first = stack.submit("slot-1", "alice", behaviour="sleep")
    stack.wait(first, ("RUNNING",))
    second = stack.submit("slot-2", "bob")
    time.sleep(1)  # several scheduler ticks: the budget is full
    assert stack.describe(second)["status"] == "RUNNABLE"
    stack.client.terminate_service_job(jobId=first, reason="make room")
    assert stack.wait(second, ENDED)["status"] == "SUCCEEDED"
    described = stack.describe(second)
    assert described["latestAttempt"]["serviceResourceId"]["name"] == "TrainingJobArn"
    assert training_interval(stack, "slot-2")[0] >= training_interval(stack, "slot-1")[1]


def test_a_restart_with_jobs_queued_loses_none_and_starts_none_twice(
    emulator: AwsEmulator,  # noqa: F811
    tmp_path: Path,
    stacks: list[LocalBatchStack],
) -> None:
    first = start_stack(emulator, tmp_path, capacity=1)
    running = first.submit("r-1", "alice", behaviour="sleep")
    first.wait(running, ("RUNNING",))
    queued = [first.submit("q-1", "bob"), first.submit("q-2", "carol")]
    assert all(first.describe(job_id)["status"] == "RUNNABLE" for job_id in queued)
    first.stop()
    # A crash between "recorded SCHEDULED" and CreateTrainingJob: q-1 was being handed over.
    jobs_file = tmp_path / "batch" / "jobs.json"
    saved = json.loads(jobs_file.read_text())
    for job in saved:
        if job["job_name"] == "q-1":
            job["status"], job["scheduled_at"] = "SCHEDULED", time.time()
    jobs_file.write_text(json.dumps(saved))

    second = start_stack(emulator, tmp_path, capacity=1, run=False)
    stacks.append(second)
    second.sagemaker.recover_interrupted_jobs()
    second.queue.start()
    assert second.wait(running, ENDED)["status"] == "FAILED"  # it was running: SageMaker failed it
    for job_id in queued:
        assert second.wait(job_id, ENDED)["status"] == "SUCCEEDED"
    created = [
        e["detail"]["TrainingJobName"]
        for e in first.events + second.events
        if e.get("source") == "aws.sagemaker" and e["detail"].get("SecondaryStatus") == "Starting"
    ]
    expected = sorted(training_name(second, name) for name in ("q-1", "q-2", "r-1"))
    assert sorted(created) == expected, "each job reaches SageMaker exactly once"
    listed = second.client.list_service_jobs(jobQueue=QUEUE, jobStatus="SUCCEEDED")["jobSummaryList"]
    assert sorted(j["jobName"] for j in listed) == ["q-1", "q-2"]


def test_batch_creates_the_training_job_under_its_own_name_and_reports_it(
    emulator: AwsEmulator,  # noqa: F811
    tmp_path: Path,
    stacks: list[LocalBatchStack],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As on AWS: the training job is not named after the payload's TrainingJobName; Batch gives
    its ARN (lower-cased, as SageMaker's ARNs are) and the launcher reports that name."""
    stack = start_stack(emulator, tmp_path, capacity=1)
    stacks.append(stack)
    job_id = stack.submit("named-1", "alice")
    assert stack.wait(job_id, ENDED)["status"] == "SUCCEEDED"
    real = training_name(stack, "named-1")
    assert real.startswith("AWSBatch") and real != "named-1"
    with pytest.raises(SageMakerError):
        stack.sagemaker.store.get("named-1")
    arn = stack.describe(job_id)["latestAttempt"]["serviceResourceId"]["value"]
    assert arn.endswith(f"training-job/{real.lower()}")

    monkeypatch.setenv("AWS_ENDPOINT_URL_BATCH", stack.server.endpoint_url)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER", stack.sagemaker_server.endpoint_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", FAKE_ACCESS_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", FAKE_SECRET_ACCESS_KEY)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    aws_clients.batch_client.cache_clear()
    aws_clients.sagemaker_client.cache_clear()
    try:
        state = BatchLauncher(QUEUE).describe("named-1")
    finally:
        aws_clients.batch_client.cache_clear()
        aws_clients.sagemaker_client.cache_clear()
    assert state is not None and state.status == "Completed"
    # The name the record is found by stays ours; Batch's comes as SageMaker spells it, or as the
    # ARN does where SageMaker does not find it by that spelling (the local one does not).
    assert state.name == "named-1"
    assert str(state.training_job_name).casefold() == real.casefold()

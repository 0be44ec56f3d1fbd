"""GET /trainings/{id}/logs and /metrics through the real handler, against the moto emulator:
CloudWatch Logs streams named as SageMaker names them, metrics.json as the container writes it."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from functions.domain.storage_layout import (
    SAGEMAKER_TRAINING_LOG_GROUP,
    training_log_stream_prefix,
    training_metrics_key,
)
from functions.domain.training_contract import MAX_METRIC_POINTS
from tests.integration.conftest import BUCKET, ApiCaller
from tests.integration.workflow import ready_inputs, training_body


@pytest.fixture
def job(api: ApiCaller) -> dict[str, Any]:
    model_id, dataset_id = ready_inputs(api)
    status, created = api("POST", "/trainings", training_body(model_id, dataset_id))
    assert status == 201, created
    return dict(created)


def write_stream(job: dict[str, Any], attempt: int, messages: list[str]) -> None:
    """What SageMaker does: one stream per attempt, ``<job name>/algo-1-<epoch>``."""
    logs = boto3.client("logs")
    with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
        logs.create_log_group(logGroupName=SAGEMAKER_TRAINING_LOG_GROUP)
    stream = f"{training_log_stream_prefix(job['sagemaker_job_name'])}algo-1-{1732500000 + attempt}"
    with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
        logs.create_log_stream(logGroupName=SAGEMAKER_TRAINING_LOG_GROUP, logStreamName=stream)
    now = int(time.time() * 1000)
    events = [{"timestamp": now + i, "message": m} for i, m in enumerate(messages)]
    logs.put_log_events(logGroupName=SAGEMAKER_TRAINING_LOG_GROUP, logStreamName=stream, logEvents=events)


def messages(page: dict[str, Any]) -> list[str]:
    return [line["message"] for line in page["lines"]]


def logs_of(api: ApiCaller, job: dict[str, Any], **query: str) -> tuple[int, Any]:
    return api("GET", f"/trainings/{job['id']}/logs", query=query or None)


def test_a_job_that_has_not_started_has_an_empty_log_to_follow(api: ApiCaller, job: dict[str, Any]) -> None:
    status, page = logs_of(api, job)
    assert status == 200, page
    assert page["lines"] == [] and page["previous_token"] is None and page["next_token"]

    write_stream(job, 1, ["first line", "second line"])
    status, followed = logs_of(api, job, next_token=page["next_token"])
    assert status == 200 and messages(followed) == ["first line", "second line"]


def test_tail_then_older_pages_cross_attempts_and_following_sees_new_lines(
    api: ApiCaller, job: dict[str, Any]
) -> None:
    write_stream(job, 1, [f"attempt1 {i}" for i in range(10)])
    write_stream(job, 2, [f"attempt2 {i}" for i in range(5)])

    status, tail = logs_of(api, job, limit="3")
    assert status == 200 and messages(tail) == ["attempt2 2", "attempt2 3", "attempt2 4"]
    assert tail["lines"][0]["timestamp"].endswith("Z")

    older: list[str] = []
    token = tail["previous_token"]
    while token:
        status, page = logs_of(api, job, limit="3", next_token=token)
        assert status == 200, page
        older = messages(page) + older
        token = page["previous_token"]
    assert older == [f"attempt1 {i}" for i in range(10)] + ["attempt2 0", "attempt2 1"]

    status, caught_up = logs_of(api, job, next_token=tail["next_token"])
    assert status == 200 and caught_up["lines"] == []
    write_stream(job, 2, ["attempt2 new"])
    status, new = logs_of(api, job, next_token=caught_up["next_token"])
    assert messages(new) == ["attempt2 new"]


def test_head_reads_every_line_in_order_across_attempts(api: ApiCaller, job: dict[str, Any]) -> None:
    write_stream(job, 1, ["a", "b", "c"])
    write_stream(job, 2, ["d", "e"])
    seen: list[str] = []
    status, page = logs_of(api, job, start="head", limit="2")
    while page["lines"]:
        assert status == 200, page
        seen += messages(page)
        status, page = logs_of(api, job, limit="2", next_token=page["next_token"])
    assert seen == ["a", "b", "c", "d", "e"]


def test_another_callers_job_is_not_found(api: ApiCaller, other_api: ApiCaller, job: dict[str, Any]) -> None:
    write_stream(job, 1, ["secret"])
    for path in (f"/trainings/{job['id']}/logs", f"/trainings/{job['id']}/metrics"):
        status, error = other_api("GET", path)
        assert status == 404 and error["error"]["code"] == "NOT_FOUND"


def test_a_token_is_bound_to_its_caller_and_job(api: ApiCaller, job: dict[str, Any]) -> None:
    write_stream(job, 1, ["x", "y"])
    _, page = logs_of(api, job, limit="1")
    model_id, dataset_id = ready_inputs(api)
    _, second = api("POST", "/trainings", training_body(model_id, dataset_id))

    status, error = logs_of(api, second, next_token=page["previous_token"])
    assert status == 400 and error["error"]["details"][0]["field"] == "next_token"

    body, signature = page["previous_token"].split(".")
    status, error = logs_of(api, job, next_token=f"{body}x.{signature}")
    assert status == 400 and error["error"]["details"][0]["field"] == "next_token"


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"start": "middle"}, "start"),
        ({"next_token": "not-a-token"}, "next_token"),
    ],
)
def test_bad_log_queries_name_the_field(
    api: ApiCaller, job: dict[str, Any], query: dict[str, str], field: str
) -> None:
    status, error = logs_of(api, job, **query)
    assert status == 400, error
    assert [d["field"] for d in error["error"]["details"]] == [field]


def test_bad_job_id_is_refused(api: ApiCaller) -> None:
    for suffix in ("logs", "metrics"):
        status, error = api("GET", f"/trainings/NOT-AN-ID/{suffix}")
        assert status == 400 and error["error"]["details"][0]["field"] == "job_id"


def put_metrics(api: ApiCaller, job: dict[str, Any], body: Any) -> None:
    text = body if isinstance(body, str) else json.dumps(body)
    boto3.client("s3").put_object(Bucket=BUCKET, Key=training_metrics_key(api.owner, job["id"]), Body=text)


def test_metrics_are_empty_before_the_first_step_then_the_curve(api: ApiCaller, job: dict[str, Any]) -> None:
    status, empty = api("GET", f"/trainings/{job['id']}/metrics")
    assert status == 200 and empty["points"] == [] and empty["job_id"] == job["id"]

    points = [
        {"step": s, "epoch": 1, "loss": 1 / s, "learning_rate": 1e-4, "elapsed_seconds": s * 0.5}
        for s in range(1, 11)
    ]
    put_metrics(
        api,
        job,
        {
            "engine": "diffusers",
            "total_steps": 10,
            "stride": 1,
            "points": points,
            "updated_at": "2026-11-25T00:00:00Z",
        },
    )
    status, curve = api("GET", f"/trainings/{job['id']}/metrics")
    assert status == 200
    assert [p["step"] for p in curve["points"]] == list(range(1, 11))
    assert curve["points"][0] == points[0] and curve["total_steps"] == 10 and curve["engine"] == "diffusers"


def test_an_oversized_curve_is_served_bounded_and_a_broken_one_as_empty(
    api: ApiCaller, job: dict[str, Any]
) -> None:
    points = [{"step": s, "epoch": 1, "loss": 0.1} for s in range(1, 2001)]
    put_metrics(api, job, {"stride": 1, "points": points, "updated_at": "2026-11-25T00:00:00Z"})
    _, curve = api("GET", f"/trainings/{job['id']}/metrics")
    steps = [p["step"] for p in curve["points"]]
    assert len(steps) <= MAX_METRIC_POINTS and steps[0] == 1 and steps[-1] == 2000

    put_metrics(api, job, "{not json")
    status, broken = api("GET", f"/trainings/{job['id']}/metrics")
    assert status == 200 and broken["points"] == []
    put_metrics(api, job, {"points": [{"step": -1}], "updated_at": "x"})
    assert api("GET", f"/trainings/{job['id']}/metrics")[1]["points"] == []


class TestCloudWatchSemantics:
    """What moto does not reproduce: empty pages mid-stream and expired CloudWatch tokens."""

    group, stream = SAGEMAKER_TRAINING_LOG_GROUP, "lora-it-x/algo-1-1732500000"

    @pytest.fixture
    def stub(self, aws_emulator: str) -> Iterator[Any]:
        from botocore.stub import Stubber

        from functions.adapters.aws_clients import logs_client

        stubber = Stubber(logs_client())
        stubber.activate()
        stubber.add_response(
            "describe_log_streams",
            {"logStreams": [{"logStreamName": self.stream, "creationTime": 1}]},
            {"logGroupName": self.group, "logStreamNamePrefix": "lora-it-x/"},
        )
        yield stubber
        stubber.deactivate()

    def expect(
        self, stub: Any, sent: str | None, events: list[str], forward: str, backward: str = "b/0"
    ) -> None:
        params: dict[str, Any] = {
            "logGroupName": self.group,
            "logStreamName": self.stream,
            "limit": 10,
            "startFromHead": True,
        }
        if sent:
            params["nextToken"] = sent
        response = {
            "events": [{"timestamp": 1732500000000, "message": m + "\n"} for m in events],
            "nextForwardToken": forward,
            "nextBackwardToken": backward,
        }
        stub.add_response("get_log_events", response, params)

    def test_empty_pages_with_a_new_token_are_read_past(self, stub: Any) -> None:
        from functions.adapters.training_logs import TrainingLogReader
        from functions.domain.training_logs import head_cursor

        self.expect(stub, None, [], "f/1")
        self.expect(stub, "f/1", ["found"], "f/2")
        read = TrainingLogReader(self.group).read("lora-it-x/", head_cursor(), 10)
        assert [line.message for line in read.lines] == ["found"]  # the trailing newline is not part of it
        assert read.newer.token == "f/2" and read.newer.stream == self.stream
        stub.assert_no_pending_responses()

    def test_the_same_token_back_is_the_end_and_an_expired_token_names_next_token(self, stub: Any) -> None:
        from functions.adapters.training_logs import TrainingLogReader
        from functions.domain.errors import InvalidInput
        from functions.domain.training_logs import Direction, LogCursor

        reader = TrainingLogReader(self.group)
        self.expect(stub, "f/2", [], "f/2")
        at_end = reader.read("lora-it-x/", LogCursor(self.stream, "f/2", Direction.FORWARD), 10)
        assert at_end.lines == [] and at_end.newer == LogCursor(self.stream, "f/2", Direction.FORWARD)

        stub.add_response(
            "describe_log_streams",
            {"logStreams": [{"logStreamName": self.stream, "creationTime": 1}]},
            {"logGroupName": self.group, "logStreamNamePrefix": "lora-it-x/"},
        )
        stub.add_client_error(
            "get_log_events", "InvalidParameterException", "The specified nextToken is invalid."
        )
        with pytest.raises(InvalidInput) as refused:
            reader.read("lora-it-x/", LogCursor(self.stream, "f/old", Direction.FORWARD), 10)
        assert refused.value.details[0].field == "next_token"

"""Integration fixtures: the real handlers against the moto server of ``tests/conftest.py``.

Callers (``api``, ``other_api``: two fresh IAM identities), SageMaker EventBridge events, and the
botocore Stubber on the service's SageMaker client.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.conftest import (
    BUCKET,
    IDEMPOTENCY_TABLE,
    JOB_PREFIX,
    TABLE,
    LambdaContextStub,
    proxy_event,
)

__all__ = ["BUCKET", "IDEMPOTENCY_TABLE", "JOB_PREFIX", "TABLE", "LambdaContextStub", "proxy_event"]


@dataclass
class ApiCaller:
    """Calls the real Lambda handler as one IAM identity."""

    owner: str

    def __call__(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        raw_body: str | None = None,
    ) -> tuple[int, Any]:
        from functions.api.handler import lambda_handler

        response = lambda_handler(
            proxy_event(method, path, self.owner, body, query, headers, raw_body), LambdaContextStub()
        )
        text = response.get("body") or ""
        return int(response["statusCode"]), (json.loads(text) if text else None)


@pytest.fixture
def api(aws_emulator: str) -> ApiCaller:
    return ApiCaller(f"arn:aws:iam::123456789012:user/it-{uuid.uuid4().hex[:10]}")


@pytest.fixture
def other_api(aws_emulator: str) -> ApiCaller:
    return ApiCaller(f"arn:aws:iam::123456789012:user/other-{uuid.uuid4().hex[:10]}")


def sagemaker_event(
    name: str, status: str, secondary: str | None = None, failure: str | None = None
) -> dict[str, Any]:
    """A real-shaped EventBridge 'SageMaker Training Job State Change' event."""
    detail: dict[str, Any] = {
        "TrainingJobName": name,
        "TrainingJobArn": f"arn:aws:sagemaker:us-east-1:123456789012:training-job/{name}",
        "TrainingJobStatus": status,
        "SecondaryStatus": secondary or status,
        "HyperParameters": {},
        "AlgorithmSpecification": {"TrainingImage": "img", "TrainingInputMode": "File"},
        "ResourceConfig": {"InstanceType": "ml.g5.2xlarge", "InstanceCount": 1, "VolumeSizeInGB": 100},
        "CreationTime": 1732500000000,
        "LastModifiedTime": 1732500100000,
        "Tags": {},
    }
    if failure:
        detail["FailureReason"] = failure
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "SageMaker Training Job State Change",
        "source": "aws.sagemaker",
        "account": "123456789012",
        "time": "2026-11-25T00:00:00Z",
        "region": "us-east-1",
        "resources": [detail["TrainingJobArn"]],
        "detail": detail,
    }


def send_event(event: dict[str, Any]) -> dict[str, Any]:
    from functions.events.handler import lambda_handler

    return lambda_handler(event, LambdaContextStub(function_name="events"))  # type: ignore[no-any-return]


@pytest.fixture
def sagemaker_stub(aws_emulator: str) -> Iterator[Any]:
    """botocore Stubber on the service's SageMaker client: expected calls, realistic answers and errors."""
    from botocore.stub import Stubber

    from functions.adapters.aws_clients import sagemaker_client

    stubber = Stubber(sagemaker_client())
    stubber.activate()
    yield stubber
    stubber.deactivate()


def created_response(name: str) -> dict[str, Any]:
    return {"TrainingJobArn": f"arn:aws:sagemaker:us-east-1:123456789012:training-job/{name}"}


@pytest.fixture
def dispatched_tasks(aws_emulator: str) -> Iterator[list[Any]]:
    """The background tasks the API hands over, captured instead of invoking the tasks function."""
    from functions.services.context import service_context

    ctx = service_context()
    captured: list[Any] = []
    original = ctx.tasks

    class Recorder:
        def dispatch(self, task: Any) -> None:
            captured.append(task)

    ctx.tasks = Recorder()  # type: ignore[assignment]
    yield captured
    ctx.tasks = original

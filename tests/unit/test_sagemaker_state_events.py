"""Reading SageMaker's state-change events (Powertools' parser with the domain's detail model)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from functions.adapters.training_launcher import TrainingJobState
from functions.events.handler import state_from_event

# The shape of SageMaker's "SageMaker Training Job State Change" event (SageMaker developer guide,
# "Events that Amazon SageMaker AI sends to Amazon EventBridge"); the detail copies
# DescribeTrainingJob, with more fields than the service reads.
EVENT: dict[str, Any] = {
    "version": "0",
    "id": "5b6a1c43-8f5e-4a3b-9f0a-2c1d4e5f6a7b",
    "detail-type": "SageMaker Training Job State Change",
    "source": "aws.sagemaker",
    "account": "123456789012",
    "time": "2026-11-25T00:00:00Z",
    "region": "us-east-1",
    "resources": ["arn:aws:sagemaker:us-east-1:123456789012:training-job/lora-abc"],
    "detail": {
        "TrainingJobName": "lora-abc",
        "TrainingJobArn": "arn:aws:sagemaker:us-east-1:123456789012:training-job/lora-abc",
        "TrainingJobStatus": "Failed",
        "SecondaryStatus": "Failed",
        "FailureReason": "AlgorithmError: out of memory",
        "HyperParameters": {},
        "CreationTime": 1732500000000,
        "Tags": {},
    },
}


def _changed(top: dict[str, Any] | None = None, **detail: Any) -> dict[str, Any]:
    """EVENT with ``top``'s keys set and detail fields set (None: removed)."""
    event = copy.deepcopy(EVENT)
    event.update(top or {})
    for name, value in detail.items():
        if value is None:
            event["detail"].pop(name)
        else:
            event["detail"][name] = value
    return event


def test_a_state_change_gives_the_state_the_service_acts_on() -> None:
    assert state_from_event(EVENT) == TrainingJobState(
        name="lora-abc",
        status="Failed",
        secondary_status="Failed",
        failure_reason="AlgorithmError: out of memory",
    )


def test_optional_detail_fields_may_be_absent() -> None:
    state = state_from_event(_changed(SecondaryStatus=None, FailureReason=None))
    assert state == TrainingJobState(
        name="lora-abc", status="Failed", secondary_status=None, failure_reason=None
    )


@pytest.mark.parametrize(
    "event",
    [
        _changed({"source": "aws.ec2"}),
        _changed({"detail-type": "SageMaker Endpoint State Change"}),
        _changed(TrainingJobName=None),
        _changed(TrainingJobStatus=None),
        _changed(TrainingJobStatus=3),
        {"detail-type": "Scheduled Event", "source": "aws.events", "detail": {}},
        {},
    ],
)
def test_any_other_event_is_not_a_state(event: dict[str, Any]) -> None:
    assert state_from_event(event) is None

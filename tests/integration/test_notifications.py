"""Notifications through the real handlers and moto: bus events per transition, signed webhooks.

The service's bus has a rule copying every ``lora-training`` event to a capture queue (see
``tests/conftest.py``); webhook deliveries are read from the real webhook queue and handed to the
real delivery handler as the SQS event source would, against a receiver on loopback.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import boto3
import pytest

from functions.domain.notifications import (
    DELIVERY_ID_HEADER,
    EVENT_SOURCE,
    JOB_STATE_CHANGE_DETAIL_TYPE,
    MODEL_READY_DETAIL_TYPE,
    SIGNATURE_HEADER,
    JobStateChangeDetail,
    WebhookBody,
    verify_signature,
)
from functions.domain.storage_layout import training_output_prefix
from tests.conftest import EVENTS_CAPTURE_QUEUE, WEBHOOK_QUEUE, WEBHOOK_SECRET
from tests.integration.conftest import ApiCaller, LambdaContextStub, sagemaker_event, send_event
from tests.integration.workflow import put_lora_output, ready_inputs, safetensors_bytes, training_body
from tests.webhook_receiver import webhook_receiver


def _queue_url(name: str) -> str:
    return str(boto3.client("sqs").get_queue_url(QueueName=name)["QueueUrl"])


def _messages_of_job(
    queue: str, job_id: str, body_job_id: Any, wait_seconds: float = 3.0
) -> list[dict[str, Any]]:
    """Receive this job's messages (others are stale: deleted); stop after a quiet receive."""
    sqs, url = boto3.client("sqs"), _queue_url(queue)
    found: list[dict[str, Any]] = []
    deadline = time.monotonic() + wait_seconds
    while time.monotonic() < deadline:
        batch = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1, AttributeNames=["All"]
        ).get("Messages", [])
        for message in batch:
            if body_job_id(json.loads(message["Body"])) == job_id:
                found.append(message)
            else:  # left by an earlier test (each xdist worker has its own emulator, tests run in turn)
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        if not batch and found:
            break
    return found


def bus_events(job_id: str) -> list[dict[str, Any]]:
    messages = _messages_of_job(EVENTS_CAPTURE_QUEUE, job_id, lambda body: body["detail"]["job_id"])
    sqs, url = boto3.client("sqs"), _queue_url(EVENTS_CAPTURE_QUEUE)
    for message in messages:
        sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return [json.loads(m["Body"]) for m in messages]


def deliver_queued_webhooks(job_id: str, wait_seconds: float = 3.0) -> list[dict[str, Any]]:
    """Hand this job's queued deliveries to the delivery handler; delete those it reports done.

    Returns the records the handler reported as failed (SQS would redeliver them)."""
    from functions.webhooks.handler import lambda_handler

    messages = _messages_of_job(
        WEBHOOK_QUEUE, job_id, lambda body: body["body"]["data"]["job_id"], wait_seconds
    )
    records = [
        {
            "messageId": m["MessageId"],
            "receiptHandle": m["ReceiptHandle"],
            "body": m["Body"],
            "attributes": m.get("Attributes", {}),
            "eventSource": "aws:sqs",
        }
        for m in messages
    ]
    if not records:
        return []  # nothing queued for this job
    result = lambda_handler({"Records": records}, LambdaContextStub(function_name="webhooks"))
    failed = {f["itemIdentifier"] for f in result["batchItemFailures"]}
    sqs, url = boto3.client("sqs"), _queue_url(WEBHOOK_QUEUE)
    for record in records:
        if record["messageId"] not in failed:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=record["receiptHandle"])
    return [r for r in records if r["messageId"] in failed]


def test_every_transition_lands_on_the_bus_with_the_v1_schema(api: ApiCaller) -> None:
    model_id, dataset_id = ready_inputs(api)
    _, job = api("POST", "/trainings", training_body(model_id, dataset_id))
    name = job["sagemaker_job_name"]
    send_event(sagemaker_event(name, "InProgress", "Training"))
    put_lora_output(job, safetensors_bytes(128), training_output_prefix(api.owner, job["id"]))
    send_event(sagemaker_event(name, "Completed", "Completed"))
    send_event(sagemaker_event(name, "Completed", "Completed"))  # a duplicate: no second change

    events = bus_events(job["id"])
    assert all(e["source"] == EVENT_SOURCE for e in events)
    changes = [e for e in events if e["detail-type"] == JOB_STATE_CHANGE_DETAIL_TYPE]
    details = sorted(
        (JobStateChangeDetail.model_validate(e["detail"]) for e in changes), key=lambda d: d.occurred_at
    )
    assert [(d.old_status, d.new_status) for d in details] == [
        (None, "PENDING"),
        ("PENDING", "STARTING"),
        ("STARTING", "TRAINING"),
        ("TRAINING", "COMPLETED"),
    ]
    assert all(d.owner == api.owner and d.job_id == job["id"] for d in details)
    completed = details[-1]
    assert completed.terminal and completed.lora_model_id == job["id"] and completed.schema_version == "1"
    ready = [e for e in events if e["detail-type"] == MODEL_READY_DETAIL_TYPE]
    assert len(ready) == 1 and ready[0]["detail"]["lora_model_id"] == job["id"]


def test_failure_and_stop_events_carry_the_reason(api: ApiCaller) -> None:
    model_id, dataset_id = ready_inputs(api)
    _, job = api("POST", "/trainings", training_body(model_id, dataset_id))
    send_event(
        sagemaker_event(job["sagemaker_job_name"], "Failed", "Failed", "AlgorithmError: out of memory")
    )
    failed = [e["detail"] for e in bus_events(job["id"]) if e["detail"]["new_status"] == "FAILED"]
    assert len(failed) == 1 and "out of memory" in failed[0]["failure_reason"] and failed[0]["terminal"]


def test_a_publish_failure_never_undoes_the_state_change(
    api: ApiCaller, monkeypatch: pytest.MonkeyPatch
) -> None:
    import functions.adapters.notifications as adapter

    model_id, dataset_id = ready_inputs(api)
    _, job = api("POST", "/trainings", training_body(model_id, dataset_id))

    class BrokenEvents:
        def put_events(self, **_: Any) -> dict[str, Any]:
            raise ConnectionError("EventBridge unreachable")

    monkeypatch.setattr(adapter, "events_client", lambda: BrokenEvents())
    send_event(sagemaker_event(job["sagemaker_job_name"], "InProgress", "Training"))
    _, running = api("GET", f"/trainings/{job['id']}")
    assert running["status"] == "TRAINING"


def test_webhook_receives_a_correctly_signed_completed_body(api: ApiCaller) -> None:
    model_id, dataset_id = ready_inputs(api)
    with webhook_receiver() as receiver:
        status, job = api("POST", "/trainings", training_body(model_id, dataset_id, webhook_url=receiver.url))
        assert status == 201 and job["webhook_url"] == receiver.url
        name = job["sagemaker_job_name"]
        send_event(sagemaker_event(name, "InProgress", "Training"))
        deliver_queued_webhooks(job["id"], wait_seconds=2)
        assert receiver.requests == []  # nothing is queued for non-terminal states
        put_lora_output(job, safetensors_bytes(128), training_output_prefix(api.owner, job["id"]))
        send_event(sagemaker_event(name, "Completed", "Completed"))
        assert deliver_queued_webhooks(job["id"]) == []  # delivered, nothing left to retry

    assert len(receiver.requests) == 1
    request = receiver.requests[0]
    assert request.path == "/hooks/lora"
    assert verify_signature(
        WEBHOOK_SECRET.encode(), request.headers[SIGNATURE_HEADER], request.body, now=int(time.time())
    )
    assert not verify_signature(
        b"another-secret", request.headers[SIGNATURE_HEADER], request.body, now=int(time.time())
    )
    body = WebhookBody.model_validate_json(request.body)
    assert body.data.new_status == "COMPLETED" and body.data.lora_model_id == job["id"]
    assert body.data.owner == api.owner and request.headers[DELIVERY_ID_HEADER] == body.delivery_id


def test_webhook_is_retried_after_a_500_then_delivered_once(api: ApiCaller) -> None:
    model_id, dataset_id = ready_inputs(api)
    with webhook_receiver(statuses=[500]) as receiver:
        _, job = api("POST", "/trainings", training_body(model_id, dataset_id, webhook_url=receiver.url))
        send_event(sagemaker_event(job["sagemaker_job_name"], "Failed", "Failed", "AlgorithmError: boom"))
        failed = deliver_queued_webhooks(job["id"])
        assert len(failed) == 1  # reported as a batch item failure: SQS redelivers it after the backoff
        time.sleep(1.5)  # WEBHOOK_RETRY_BASE_SECONDS=1 in tests
        assert deliver_queued_webhooks(job["id"], wait_seconds=5) == []

    assert len(receiver.requests) == 2
    first, second = (WebhookBody.model_validate_json(r.body) for r in receiver.requests)
    assert first.delivery_id == second.delivery_id == f"{job['id']}:FAILED"
    assert second.data.failure_reason is not None and "boom" in second.data.failure_reason


def test_stopped_job_webhook_fires_once(api: ApiCaller, sagemaker_stub: Any) -> None:
    model_id, dataset_id = ready_inputs(api)
    sagemaker_stub.add_response(
        "create_training_job", {"TrainingJobArn": "arn:aws:sagemaker:us-east-1:1:training-job/x"}
    )
    with webhook_receiver() as receiver:
        _, job = api("POST", "/trainings", training_body(model_id, dataset_id, webhook_url=receiver.url))
        sagemaker_stub.add_response("stop_training_job", {}, {"TrainingJobName": job["sagemaker_job_name"]})
        assert api("POST", f"/trainings/{job['id']}/stop")[0] == 200
        deliver_queued_webhooks(job["id"], wait_seconds=2)
        assert receiver.requests == []  # STOPPING is not terminal
        send_event(sagemaker_event(job["sagemaker_job_name"], "Stopped"))
        deliver_queued_webhooks(job["id"])
    assert [WebhookBody.model_validate_json(r.body).data.new_status for r in receiver.requests] == ["STOPPED"]


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://example.com/hook", "https"),
        ("https://user:secret@example.com/hook", "credentials"),
        ("https://10.0.0.7/hook", "private"),
        ("https://169.254.169.254/latest/meta-data", "private"),
        ("https://[::ffff:192.168.1.1]/x", "private"),
        ("ftp://example.com/x", "https"),
        ("https://example.com/" + "a" * 2100, "2048"),
    ],
)
def test_hostile_webhook_urls_are_refused_naming_the_field(api: ApiCaller, url: str, problem: str) -> None:
    model_id, dataset_id = ready_inputs(api)
    status, error = api("POST", "/trainings", training_body(model_id, dataset_id, webhook_url=url))
    assert status == 400, error
    details = error["error"]["details"]
    assert details and details[0]["field"].endswith("webhook_url") and problem in json.dumps(details)


def test_a_bad_webhook_url_is_listed_with_the_requests_other_problems(api: ApiCaller) -> None:
    model_id, dataset_id = ready_inputs(api)
    body = training_body(model_id, dataset_id, webhook_url="https://192.168.1.1/x", instance_type="ml.nope")
    status, error = api("POST", "/trainings", body)
    assert status == 400
    assert {d["field"] for d in error["error"]["details"]} >= {"webhook_url", "instance_type"}


def test_webhook_url_is_visible_to_its_owner_only(api: ApiCaller, other_api: ApiCaller) -> None:
    model_id, dataset_id = ready_inputs(api)
    url = f"http://127.0.0.1:9/hooks/{uuid.uuid4().hex}"
    _, job = api("POST", "/trainings", training_body(model_id, dataset_id, webhook_url=url))
    assert api("GET", f"/trainings/{job['id']}")[1]["webhook_url"] == url
    assert other_api("GET", f"/trainings/{job['id']}")[0] == 404
    _, listed = other_api("GET", "/trainings")
    assert all(item.get("webhook_url") != url for item in listed["items"])
    # The other caller cannot stop it either, so it can never cause a delivery to this URL.
    assert other_api("POST", f"/trainings/{job['id']}/stop")[0] == 404


def test_a_refused_launch_is_announced_and_its_webhook_fires(api: ApiCaller, sagemaker_stub: Any) -> None:
    model_id, dataset_id = ready_inputs(api)
    sagemaker_stub.add_client_error("create_training_job", "ValidationException", "Invalid RoleArn")
    with webhook_receiver() as receiver:
        _, job = api("POST", "/trainings", training_body(model_id, dataset_id, webhook_url=receiver.url))
        assert job["status"] == "FAILED"
        deliver_queued_webhooks(job["id"])
    changes = sorted(
        (e["detail"]["old_status"] or "", e["detail"]["new_status"]) for e in bus_events(job["id"])
    )
    assert changes == [("", "PENDING"), ("PENDING", "FAILED")]
    (delivered,) = [WebhookBody.model_validate_json(r.body) for r in receiver.requests]
    assert delivered.data.new_status == "FAILED" and "Invalid RoleArn" in (
        delivered.data.failure_reason or ""
    )


def test_a_change_repaired_by_the_reconciler_is_announced(
    api: ApiCaller, sagemaker_stub: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from functions.adapters.training_launcher import TrainingJobState
    from functions.services.context import service_context
    from functions.services.reconciliation import reconcile

    model_id, dataset_id = ready_inputs(api)
    sagemaker_stub.add_response(
        "create_training_job", {"TrainingJobArn": "arn:aws:sagemaker:us-east-1:1:training-job/x"}
    )
    _, job = api("POST", "/trainings", training_body(model_id, dataset_id))
    ctx = service_context()

    def describe(name: str) -> TrainingJobState | None:  # the job's events were lost
        return (
            TrainingJobState(name, "Failed", "Failed", "lost event: spot reclaimed")
            if name == job["sagemaker_job_name"]
            else None
        )

    monkeypatch.setattr(ctx.launcher, "describe", describe)
    reconcile(ctx)
    (failed,) = [e["detail"] for e in bus_events(job["id"]) if e["detail"]["new_status"] == "FAILED"]
    assert failed["cause"].startswith("reconciler") and "spot reclaimed" in failed["failure_reason"]

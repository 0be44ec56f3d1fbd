"""Shared test fixtures: AWS emulated by moto 5's server on loopback, and API Gateway event shapes.

``aws_emulator`` (session scope: one ThreadedMotoServer per xdist worker, started only when a test
asks for it) sets ``AWS_ENDPOINT_URL_*``, fake credentials, the region and the service's
env vars, and creates the records table, the idempotency table and the bucket. Every boto3
client created afterwards reaches moto, exactly as the local runtime does. Tests isolate
themselves by using a fresh caller identity or fresh ids, not by resetting the emulator.
``proxy_event`` builds an IAM-authorised API Gateway REST (v1) proxy event; ``LambdaContextStub``
is a Lambda context for invoking handlers directly.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from functions.adapters.table_schema import create_idempotency_table_kwargs, create_table_kwargs

TABLE, IDEMPOTENCY_TABLE, BUCKET = "lora-records", "lora-idempotency", "lora-bucket"
# Notifications: the service's bus, a rule copying its events to a capture queue (what tests
# read), the webhook delivery queue and its signing secret.
EVENT_BUS, EVENTS_CAPTURE_QUEUE, WEBHOOK_QUEUE = "lora-events", "lora-events-capture", "lora-webhooks"
WEBHOOK_SECRET = "integration-webhook-secret"
JOB_PREFIX = "lora-it"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def aws_emulator() -> Iterator[str]:
    with running_aws_emulator() as endpoint:
        yield endpoint


@contextlib.contextmanager
def running_aws_emulator() -> Iterator[str]:
    """The emulator as a plain context manager (the fixture above; benchmarks use it directly)."""
    import boto3
    from moto.server import ThreadedMotoServer  # imported here: only emulator users pay for it

    from local_runtime.aws_emulator import serialise_dynamodb_requests

    port = _free_port()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    serialise_dynamodb_requests()  # DynamoDB's per-request atomicity, which moto lacks
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL_S3": endpoint,
            "AWS_ENDPOINT_URL_DYNAMODB": endpoint,
            "AWS_ENDPOINT_URL_SAGEMAKER": endpoint,
            "AWS_ENDPOINT_URL_CLOUDWATCH_LOGS": endpoint,
            "AWS_ENDPOINT_URL_SECRETS_MANAGER": endpoint,
            "AWS_ENDPOINT_URL_EVENTBRIDGE": endpoint,
            "AWS_ENDPOINT_URL_SQS": endpoint,
            "AWS_ENDPOINT_URL_KMS": endpoint,
            "TABLE_NAME": TABLE,
            "IDEMPOTENCY_TABLE_NAME": IDEMPOTENCY_TABLE,
            "BUCKET_NAME": BUCKET,
            "PAGE_TOKEN_SECRET": "integration-secret",
            "TRAINING_IMAGE_URI": "123456789012.dkr.ecr.us-east-1.amazonaws.com/lora:latest",
            "TRAINING_ROLE_ARN": "arn:aws:iam::123456789012:role/lora-training",
            "JOB_NAME_PREFIX": JOB_PREFIX,
            "DEFAULT_USE_SPOT": "false",
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_LOG_LEVEL": "WARNING",
            "POWERTOOLS_DEV": "false",
        }
    )
    dynamodb = boto3.client("dynamodb")
    dynamodb.create_table(**create_table_kwargs(TABLE))
    dynamodb.create_table(**create_idempotency_table_kwargs(IDEMPOTENCY_TABLE))
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    os.environ.update(create_notification_resources())
    key = boto3.client("kms").create_key(Description="import tokens")["KeyMetadata"]["Arn"]
    os.environ["IMPORT_TOKEN_KEY_ARN"] = key
    try:
        yield endpoint
    finally:
        server.stop()


def create_notification_resources() -> dict[str, str]:
    """The bus, a capture rule -> SQS, and the webhook queue; returns their env vars."""
    import boto3

    sqs, events = boto3.client("sqs"), boto3.client("events")
    events.create_event_bus(Name=EVENT_BUS)
    capture_url = sqs.create_queue(QueueName=EVENTS_CAPTURE_QUEUE)["QueueUrl"]
    capture_arn = sqs.get_queue_attributes(QueueUrl=capture_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events.put_rule(
        Name="capture-all", EventBusName=EVENT_BUS, EventPattern=json.dumps({"source": ["lora-training"]})
    )
    events.put_targets(Rule="capture-all", EventBusName=EVENT_BUS, Targets=[{"Id": "q", "Arn": capture_arn}])
    return {
        "EVENT_BUS_NAME": EVENT_BUS,
        "WEBHOOK_QUEUE_URL": sqs.create_queue(QueueName=WEBHOOK_QUEUE)["QueueUrl"],
        "WEBHOOK_SIGNING_SECRET": WEBHOOK_SECRET,
        "WEBHOOK_ALLOW_LOOPBACK_HTTP": "true",
        "WEBHOOK_RETRY_BASE_SECONDS": "1",
        "MODEL_IMPORT_ALLOW_LOOPBACK_HTTP": "true",  # imports from the tests' loopback file servers
        "MODEL_IMPORT_MAX_BYTES": str(IMPORT_LIMIT_BYTES),
    }


@pytest.fixture(autouse=True)
def check_function_permissions(request: pytest.FixtureRequest) -> Iterator[None]:
    """Integration tests: every AWS call a Lambda function's code makes must be allowed by that
    function's role in the synthesized template (tests/iam_check.py); a call it does not allow
    fails the test at teardown."""
    if "integration" not in request.node.path.parts:
        yield
        return
    from tests.iam_check import RolePolicies, denied_calls, recording, synthesized_template

    with recording() as recorder:
        yield
    if recorder.calls:
        template = synthesized_template(request.config.cache)
        denied = denied_calls(recorder.calls, RolePolicies(template, recorder.env))
        assert denied == [], "calls the function's role does not allow:\n" + "\n".join(denied)


IMPORT_LIMIT_BYTES = 4 * 1024**2  # small, so the tests can exceed it cheaply


@dataclass
class LambdaContextStub:
    function_name: str = "api"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:api"
    aws_request_id: str = "req"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def proxy_event(
    method: str,
    path: str,
    owner: str | None,
    body: Any = None,
    query: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    raw_body: str | None = None,
) -> dict[str, Any]:
    """An API Gateway REST (v1) proxy event as IAM-authorised API Gateway sends it."""
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    return {
        "resource": path,
        "path": path,
        "httpMethod": method,
        "headers": all_headers,
        "multiValueHeaders": {k: [v] for k, v in all_headers.items()},
        "queryStringParameters": query or None,
        "multiValueQueryStringParameters": {k: [v] for k, v in query.items()} if query else None,
        "pathParameters": None,
        "stageVariables": None,
        "body": raw_body if raw_body is not None else (json.dumps(body) if body is not None else None),
        "isBase64Encoded": False,
        "requestContext": {
            "resourcePath": path,
            "httpMethod": method,
            "path": f"/prod{path}",
            "stage": "prod",
            "requestId": str(uuid.uuid4()),
            "identity": {"userArn": owner, "caller": owner} if owner else {},
        },
    }

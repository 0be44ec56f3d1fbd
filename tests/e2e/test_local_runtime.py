"""The local runtime's plumbing, with stand-in handlers: the HTTP -> API Gateway event
adapter, local authentication, and state that survives restarts (and crashes)."""

from __future__ import annotations

import base64
import signal
import time
from typing import Any

import boto3
import httpx
import pytest

from local_runtime.aws_emulator import FAKE_ACCESS_KEY_ID, FAKE_SECRET_ACCESS_KEY, ResourceNames
from tests.e2e.conftest import RunningRuntime, RuntimeLauncher

STUBS = (
    "--api-handler",
    "tests.e2e.stub_handlers.echo_api",
    "--events-handler",
    "tests.e2e.stub_handlers.ignore_events",
)
NAMES = ResourceNames()


def aws_client(runtime: RunningRuntime, service: str) -> Any:
    return boto3.client(
        service,  # type: ignore[call-overload]
        endpoint_url=runtime.info["aws_endpoint_url"],
        region_name="us-east-1",
        aws_access_key_id=FAKE_ACCESS_KEY_ID,
        aws_secret_access_key=FAKE_SECRET_ACCESS_KEY,
    )


def test_requests_without_a_known_token_get_401_in_the_api_error_shape(runtimes: RuntimeLauncher) -> None:
    runtime = runtimes.start(extra=STUBS)
    for headers in ({}, {"Authorization": "Bearer not-a-token"}, {"Authorization": runtime.token()}):
        response = httpx.get(f"{runtime.api_url}/models", headers=headers)
        assert response.status_code == 401
        error = response.json()["error"]
        assert error["code"] == "UNAUTHENTICATED" and error["details"] == [] and "Bearer" in error["message"]


def test_http_requests_become_rest_proxy_events_with_the_callers_identity(runtimes: RuntimeLauncher) -> None:
    runtime = runtimes.start(users=("local", "alice"), extra=STUBS)
    response = httpx.get(
        f"{runtime.api_url}/models/m%201?kind=lora&tag=a&tag=b",
        headers={"Authorization": f"Bearer {runtime.token('alice')}", "X-Trace": "t1"},
    )
    assert response.status_code == 200
    assert response.headers.get_list("X-Multi") == ["a", "b"]
    payload = response.json()
    event = payload["event"]
    assert (event["httpMethod"], event["path"], event["resource"]) == ("GET", "/models/m 1", "/{proxy+}")
    assert event["queryStringParameters"] == {"kind": "lora", "tag": "b"}
    assert event["multiValueQueryStringParameters"] == {"kind": ["lora"], "tag": ["a", "b"]}
    assert event["headers"]["X-Trace"] == "t1" and event["multiValueHeaders"]["X-Trace"] == ["t1"]
    context = event["requestContext"]
    assert context["identity"]["userArn"] == "arn:aws:iam::000000000000:user/alice"
    assert context["stage"] == "local" and context["requestId"] and context["path"] == "/local/models/m 1"
    assert event["body"] is None and event["isBase64Encoded"] is False
    assert payload["function_name"] == "lora-local-api" and payload["remaining_ms"] > 0

    as_local = {"Authorization": f"Bearer {runtime.token()}"}
    posted = httpx.post(f"{runtime.api_url}/datasets", json={"name": "x"}, headers=as_local).json()["event"]
    assert posted["body"] == '{"name":"x"}' and posted["isBase64Encoded"] is False
    assert posted["requestContext"]["identity"]["userArn"].endswith(":user/local")
    binary = httpx.put(
        f"{runtime.api_url}/blob",
        content=b"\x00\xff",
        headers={**as_local, "Content-Type": "application/octet-stream"},
    )
    assert base64.b64decode(binary.json()["event"]["body"]) == b"\x00\xff"
    assert binary.json()["event"]["isBase64Encoded"] is True
    image = httpx.get(f"{runtime.api_url}/binary", headers=as_local)
    assert image.content == b"\x89PNG\x00" and image.headers["content-type"] == "image/png"


@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
def test_state_survives_a_restart_and_a_crash(runtimes: RuntimeLauncher, how: str) -> None:
    first = runtimes.start(extra=STUBS)
    s3, dynamodb = aws_client(first, "s3"), aws_client(first, "dynamodb")
    s3.put_object(Bucket=NAMES.bucket, Key="datasets/o/d1/files/1_cat/a.png", Body=b"image bytes")
    dynamodb.put_item(
        TableName=NAMES.table, Item={"pk": {"S": "MODEL#m1"}, "sk": {"S": "META"}, "size": {"N": "42"}}
    )
    if how == "sigkill":
        time.sleep(4.5)  # one background snapshot interval (3 s) and its write
        first.process.send_signal(signal.SIGKILL)
        first.process.wait()
    else:
        assert first.stop() == 0

    second = runtimes.start(data_dir=first.data_dir, extra=STUBS)

    assert second.token() == first.token()
    body = (
        aws_client(second, "s3")
        .get_object(Bucket=NAMES.bucket, Key="datasets/o/d1/files/1_cat/a.png")["Body"]
        .read()
    )
    assert body == b"image bytes"
    item = aws_client(second, "dynamodb").get_item(
        TableName=NAMES.table, Key={"pk": {"S": "MODEL#m1"}, "sk": {"S": "META"}}
    )
    assert item["Item"]["size"] == {"N": "42"}


def test_deleted_objects_stay_deleted_after_a_restart(runtimes: RuntimeLauncher) -> None:
    first = runtimes.start(extra=STUBS)
    s3 = aws_client(first, "s3")
    s3.put_object(Bucket=NAMES.bucket, Key="models/a.safetensors", Body=b"x")
    time.sleep(4.5)
    s3.delete_object(Bucket=NAMES.bucket, Key="models/a.safetensors")
    assert first.stop() == 0
    second = runtimes.start(data_dir=first.data_dir, extra=STUBS)
    assert aws_client(second, "s3").list_objects_v2(Bucket=NAMES.bucket).get("KeyCount") == 0

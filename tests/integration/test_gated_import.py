"""A gated model's import with an access token: it reaches the file's host, and nothing else.

The token travels from ``POST /models`` to the tasks function sealed with the import-token KMS
key (functions/adapters/token_sealer.py); these tests prove it opens the gate, is sent to the
URL's own origin only, and never lands in a record, a log line, an event, the task's payload or
a response.
"""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

from functions.domain.model_import import SEALED_TOKEN_PARAM
from functions.services import model_import as import_service
from functions.services.context import service_context
from functions.services.model_import import run_import_task
from tests.conftest import EVENTS_CAPTURE_QUEUE
from tests.iam_check import as_function
from tests.integration.conftest import TABLE, ApiCaller
from tests.integration.workflow import checkpoint_bytes

TOKEN = "hf_GatedTokenThatMustNeverLeak0123456789"
CHECKPOINT = checkpoint_bytes(extra_bytes=1024)


class GatedServer:
    """Serves ``/gated.safetensors`` only with the right Bearer token; ``/moved`` redirects to
    ``redirect_to``. Every request's Authorization header is kept."""

    def __init__(self) -> None:
        self.authorizations: list[str | None] = []
        self.redirect_to = ""
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                server.authorizations.append(self.headers.get("Authorization"))
                if self.path == "/moved":
                    self.send_response(302)
                    self.send_header("Location", server.redirect_to)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                allowed = self.path == "/open.safetensors" or (
                    self.headers.get("Authorization") == f"Bearer {TOKEN}"
                )
                status, body = (200, CHECKPOINT) if allowed else (401, b"gated")
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"


@pytest.fixture
def gated() -> Iterator[GatedServer]:
    server = GatedServer()
    yield server
    server.server.shutdown()


@pytest.fixture
def cdn() -> Iterator[GatedServer]:
    server = GatedServer()
    yield server
    server.server.shutdown()


def _import(api: ApiCaller, url: str, **extra: Any) -> tuple[int, dict[str, Any]]:
    return api("POST", "/models", {"name": "gated", "fm_type": "sd15", "source_url": url, **extra})


def _run_as_tasks_function(task: Any) -> None:
    with as_function("tasks"):
        run_import_task(service_context(), task)


def _everything_stored() -> str:
    items = boto3.client("dynamodb").scan(TableName=TABLE)["Items"]
    return json.dumps(items)


def _events_on_the_bus() -> str:
    sqs = boto3.client("sqs")
    url = sqs.get_queue_url(QueueName=EVENTS_CAPTURE_QUEUE)["QueueUrl"]
    bodies = []
    for _ in range(3):  # peek: visibility 0 leaves them for the tests that read them
        answer = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0)
        bodies += [m["Body"] for m in answer.get("Messages", [])]
    return json.dumps(bodies)


@contextmanager
def service_log_lines() -> Iterator[io.StringIO]:
    """Every line the service's Powertools loggers write while the block runs, as they format it.

    A handler of its own on the service's parent logger (every function's module logger is its
    child), at DEBUG whatever level the suite runs at: capturing stdout would depend on which
    stream each logger bound when it was created.
    """
    lines = io.StringIO()
    handler = logging.StreamHandler(lines)
    handler.setFormatter(LambdaPowertoolsFormatter())
    parent = logging.getLogger(import_service.logger.name.split(".", 1)[0])
    levels = (parent.level, import_service.logger.log_level)
    parent.addHandler(handler)
    parent.setLevel(logging.DEBUG)
    import_service.logger.setLevel(logging.DEBUG)
    try:
        yield lines
    finally:
        parent.removeHandler(handler)
        parent.setLevel(levels[0])
        import_service.logger.setLevel(levels[1])


def test_the_token_opens_the_gate_and_is_never_stored_logged_or_announced(
    api: ApiCaller, dispatched_tasks: list[Any], gated: GatedServer
) -> None:
    with service_log_lines() as lines:
        status, created = _import(api, gated.url("/gated.safetensors"), access_token=TOKEN)
        assert status == 202, created
        task = dispatched_tasks[-1]
        assert SEALED_TOKEN_PARAM in task.params
        _run_as_tasks_function(task)

    status, model = api("GET", f"/models/{created['model']['id']}")
    assert status == 200 and model["status"] == "ready", model
    assert gated.authorizations == [f"Bearer {TOKEN}"]  # the host the user named got it, once
    logs = lines.getvalue()
    assert "model imported" in logs  # the functions' log lines were captured: the check below is real
    leaks = {
        "the API's answers": json.dumps([created, model]),
        "the task's payload": task.model_dump_json(),
        "the table": _everything_stored(),
        "the functions' log lines": logs,
        "the event bus": _events_on_the_bus(),
    }
    for place, text in leaks.items():
        assert TOKEN not in text, f"the access token appears in {place}"


def test_without_the_token_a_gated_import_fails_saying_what_is_missing(
    api: ApiCaller, dispatched_tasks: list[Any], gated: GatedServer
) -> None:
    status, created = _import(api, gated.url("/gated.safetensors"))
    assert status == 202, created
    _run_as_tasks_function(dispatched_tasks[-1])
    model = api("GET", f"/models/{created['model']['id']}")[1]
    assert model["status"] == "failed"
    assert "401" in model["failure_reason"] and "access_token" in model["failure_reason"]


def test_the_token_is_not_sent_to_another_host_a_redirect_names(
    api: ApiCaller, dispatched_tasks: list[Any], gated: GatedServer, cdn: GatedServer
) -> None:
    gated.redirect_to = cdn.url("/open.safetensors")  # another origin (port): a CDN's signed URL
    status, created = _import(api, gated.url("/moved"), access_token=TOKEN, filename="redirected.safetensors")
    assert status == 202, created
    _run_as_tasks_function(dispatched_tasks[-1])
    assert api("GET", f"/models/{created['model']['id']}")[1]["status"] == "ready"
    assert gated.authorizations == [f"Bearer {TOKEN}"]
    assert cdn.authorizations == [None]


def test_a_sealed_token_opens_only_for_its_own_model(
    api: ApiCaller, dispatched_tasks: list[Any], gated: GatedServer
) -> None:
    """The encryption context binds the ciphertext to one model: copied into another task, it
    does not open, and that import fails with the reason instead of fetching."""
    _import(api, gated.url("/gated.safetensors"), access_token=TOKEN)
    sealed = dispatched_tasks[-1].params[SEALED_TOKEN_PARAM]
    status, other = _import(api, gated.url("/gated.safetensors"), filename="other-model.safetensors")
    assert status == 202, other
    stolen = dispatched_tasks[-1].model_copy(update={"params": {SEALED_TOKEN_PARAM: sealed}})
    _run_as_tasks_function(stolen)
    model = api("GET", f"/models/{other['model']['id']}")[1]
    assert model["status"] == "failed" and "could not be unsealed" in model["failure_reason"]
    assert gated.authorizations == []  # nothing was fetched


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        ({"access_token": "hf_abc\r\nX-Injected: 1"}, "printable ASCII"),
        ({"access_token": "two words"}, "printable ASCII"),
        ({"access_token": ""}, "at least 1"),
        ({"access_token": "x" * 1025}, "at most 1024"),
    ],
)
def test_a_malformed_token_is_refused_naming_the_field(
    api: ApiCaller, dispatched_tasks: list[Any], gated: GatedServer, extra: dict[str, Any], problem: str
) -> None:
    status, body = _import(api, gated.url("/gated.safetensors"), **extra)
    assert status == 400, body
    assert [d["field"] for d in body["error"]["details"]] == ["access_token"], body
    assert problem in body["error"]["details"][0]["problem"]
    assert extra["access_token"] not in json.dumps(body) or extra["access_token"] == ""
    assert dispatched_tasks == []


def test_a_token_with_an_upload_is_refused_naming_the_field(api: ApiCaller) -> None:
    status, body = api(
        "POST",
        "/models",
        {
            "name": "upload",
            "fm_type": "sd15",
            "filename": "upload-model.safetensors",
            "size_bytes": 1024,
            "access_token": TOKEN,
        },
    )
    assert status == 400, body
    assert [d["field"] for d in body["error"]["details"]] == ["access_token"], body

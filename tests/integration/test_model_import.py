"""POST /models with source_url against the emulator, fetching from a loopback file server."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest

from functions.domain.records import ModelRecord
from functions.services.context import service_context
from functions.services.model_import import run_import_task
from tests.conftest import IMPORT_LIMIT_BYTES
from tests.integration.conftest import BUCKET, ApiCaller
from tests.integration.workflow import checkpoint_bytes, safetensors_bytes

GOOD = checkpoint_bytes(extra_bytes=2048)
OMIT = "omit"


class FileServer:
    """Serves ``routes``: path -> (status, headers, body); redirects are a Location header."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, dict[str, str], bytes]] = {}
        routes = self.routes

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                status, headers, body = routes.get(self.path, (404, {}, b"not found"))
                self.send_response(status)
                headers = {"Content-Length": str(len(body)), **headers}
                for name, value in headers.items():
                    if value != OMIT:  # no Content-Length: HTTP/1.0 ends the body by closing
                        self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"


@pytest.fixture
def files() -> Iterator[FileServer]:
    server = FileServer()
    yield server
    server.server.shutdown()


def start_import(api: ApiCaller, url: str, **extra: Any) -> dict[str, Any]:
    status, created = api(
        "POST", "/models", {"name": "imported", "fm_type": "sd15", "source_url": url, **extra}
    )
    assert status == 202, created
    assert created["upload"] is None and created["model"]["status"] == "processing"
    return dict(created["model"])


def run_last(dispatched: list[Any]) -> None:
    run_import_task(service_context(), dispatched[-1])


def test_an_import_streams_the_file_checks_it_and_becomes_ready(
    api: ApiCaller, dispatched_tasks: list[Any], files: FileServer
) -> None:
    files.routes["/m/base.safetensors"] = (200, {}, GOOD)
    model = start_import(api, files.url("/m/base.safetensors"))
    assert len(dispatched_tasks) == 1 and dispatched_tasks[0].record_id == model["id"]
    run_last(dispatched_tasks)
    status, ready = api("GET", f"/models/{model['id']}")
    assert status == 200 and ready["status"] == "ready", ready
    assert ready["size_bytes"] == len(GOOD) and ready["filename"] == "base.safetensors"
    assert ready["source_url"] == files.url("/m/base.safetensors") and ready["download_url"]
    record = service_context().repository.get(ModelRecord, model["id"], api.owner)
    assert boto3.client("s3").get_object(Bucket=BUCKET, Key=record.s3_key)["Body"].read() == GOOD
    run_last(dispatched_tasks)  # a retried invocation changes nothing
    assert api("GET", f"/models/{model['id']}")[1]["status"] == "ready"


def test_redirects_are_followed_and_checked(
    api: ApiCaller, dispatched_tasks: list[Any], files: FileServer
) -> None:
    files.routes["/a"] = (302, {"Location": "/b.safetensors"}, b"")
    files.routes["/b.safetensors"] = (200, {}, GOOD)
    model = start_import(api, files.url("/a"), filename="from-redirect.safetensors")
    run_last(dispatched_tasks)
    assert api("GET", f"/models/{model['id']}")[1]["status"] == "ready"

    for hop in range(5):  # a chain longer than the limit
        files.routes[f"/loop{hop}"] = (302, {"Location": f"/loop{hop + 1}"}, b"")
    model = start_import(api, files.url("/loop0"), filename="loop-model.safetensors")
    run_last(dispatched_tasks)
    failed = api("GET", f"/models/{model['id']}")[1]
    assert failed["status"] == "failed" and "redirects" in failed["failure_reason"]

    files.routes["/to-metadata"] = (302, {"Location": "https://169.254.169.254/latest/x.safetensors"}, b"")
    model = start_import(api, files.url("/to-metadata"), filename="meta-model.safetensors")
    run_last(dispatched_tasks)
    failed = api("GET", f"/models/{model['id']}")[1]
    assert failed["status"] == "failed" and "private, loopback or link-local" in failed["failure_reason"]


@pytest.mark.parametrize(
    ("route", "reason"),
    [
        ((200, {}, b"this is not a safetensors file at all"), "header"),
        ((200, {}, safetensors_bytes(64)), "not an SD 1.5 checkpoint: missing the UNet"),
        ((200, {}, checkpoint_bytes("sdxl")), "not an SD 1.5 checkpoint: it is an SDXL checkpoint"),
        ((200, {"Content-Length": str(IMPORT_LIMIT_BYTES + 1)}, b""), "over the import limit"),
        (
            (200, {"Content-Length": OMIT}, b"\x00" * (IMPORT_LIMIT_BYTES + 10)),
            "larger than the import limit",
        ),
        ((200, {"Content-Length": str(len(GOOD) + 100)}, GOOD), "transfer ended"),
        ((404, {}, b"gone"), "HTTP 404"),
        ((200, {"Content-Disposition": 'attachment; filename="evil.ckpt"'}, GOOD), "evil.ckpt"),
    ],
)
def test_bad_files_end_failed_with_the_reason_and_leave_nothing(
    api: ApiCaller,
    dispatched_tasks: list[Any],
    files: FileServer,
    route: tuple[int, dict[str, str], bytes],
    reason: str,
) -> None:
    files.routes["/bad.safetensors"] = route
    model = start_import(api, files.url("/bad.safetensors"))
    run_last(dispatched_tasks)
    failed = api("GET", f"/models/{model['id']}")[1]
    assert failed["status"] == "failed" and reason in failed["failure_reason"], failed
    record = service_context().repository.get(ModelRecord, model["id"], api.owner)
    listed = boto3.client("s3").list_objects_v2(Bucket=BUCKET, Prefix=record.s3_key)
    assert listed.get("KeyCount", 0) == 0
    assert (
        boto3.client("s3").list_multipart_uploads(Bucket=BUCKET, Prefix=record.s3_key).get("Uploads", [])
        == []
    )


def test_a_wrong_sha256_fails_the_import(
    api: ApiCaller, dispatched_tasks: list[Any], files: FileServer
) -> None:
    files.routes["/m.safetensors"] = (200, {}, GOOD)
    model = start_import(api, files.url("/m.safetensors"), sha256="0" * 64)
    run_last(dispatched_tasks)
    failed = api("GET", f"/models/{model['id']}")[1]
    assert failed["status"] == "failed" and "sha256" in failed["failure_reason"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"source_url": "https://10.0.0.1/m.safetensors"}, "source_url"),
        ({"source_url": "https://name.invalid/m.safetensors"}, "source_url"),  # does not resolve
        ({"source_url": "https://example.com/m.ckpt"}, "source_url"),
        ({"source_url": "https://example.com/api/download/1"}, "filename"),
        ({"source_url": "https://example.com/m.safetensors", "size_bytes": 10}, "size_bytes"),
        ({"filename": "model-file.safetensors"}, "size_bytes"),
    ],
)
def test_bad_import_requests_name_the_field_and_create_nothing(
    api: ApiCaller, dispatched_tasks: list[Any], body: dict[str, Any], field: str
) -> None:
    status, error = api("POST", "/models", {"name": "m", "fm_type": "sd15", **body})
    assert status == 400, error
    assert field in {d["field"] for d in error["error"]["details"]}, error
    assert dispatched_tasks == [] and api("GET", "/models")[1]["items"] == []


def test_others_cannot_see_an_import_and_an_overdue_one_fails_on_read(
    api: ApiCaller, other_api: ApiCaller, dispatched_tasks: list[Any], files: FileServer
) -> None:
    files.routes["/m.safetensors"] = (200, {}, GOOD)
    model = start_import(api, files.url("/m.safetensors"))
    assert other_api("GET", f"/models/{model['id']}")[0] == 404
    ctx = service_context()
    record = ctx.repository.get(ModelRecord, model["id"], api.owner)
    ctx.repository.save(record.model_copy(update={"updated_at": "2020-01-01T00:00:00.000000Z"}))
    failed = api("GET", f"/models/{model['id']}")[1]
    assert failed["status"] == "failed" and "did not finish" in failed["failure_reason"]
    run_last(dispatched_tasks)  # the late task finds nothing to do
    assert api("GET", f"/models/{model['id']}")[1]["status"] == "failed"
    assert api("DELETE", f"/models/{model['id']}")[0] == 204


def test_a_large_file_arrives_whole_in_several_parts(
    api: ApiCaller, dispatched_tasks: list[Any], files: FileServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dataclasses

    import functions.services.model_import as model_import

    ctx = service_context()
    monkeypatch.setattr(
        ctx, "settings", dataclasses.replace(ctx.settings, model_import_max_bytes=64 * 1024**2)
    )
    monkeypatch.setattr(model_import, "choose_part_size", lambda size: 5 * 1024**2)  # S3's smallest part
    big = checkpoint_bytes(extra_bytes=12 * 1024**2 + 123)  # three parts, the last one short
    files.routes["/big.safetensors"] = (200, {}, big)
    model = start_import(api, files.url("/big.safetensors"))
    run_last(dispatched_tasks)
    ready = api("GET", f"/models/{model['id']}")[1]
    assert ready["status"] == "ready" and ready["size_bytes"] == len(big), ready
    record = ctx.repository.get(ModelRecord, model["id"], api.owner)
    head = boto3.client("s3").head_object(Bucket=BUCKET, Key=record.s3_key)
    assert head["ETag"].strip('"').endswith("-3")  # a multipart object of three parts
    assert boto3.client("s3").get_object(Bucket=BUCKET, Key=record.s3_key)["Body"].read() == big

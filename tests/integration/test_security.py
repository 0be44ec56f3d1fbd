"""Tenancy on every route, hostile input, presigned-upload binding, pagination and audit."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest

from functions.domain.dataset_rules import MAX_FILES, UPLOAD_URLS_PER_RESPONSE
from functions.domain.storage_layout import dataset_upload_key, model_object_key
from tests.integration.conftest import BUCKET, TABLE, ApiCaller, proxy_event
from tests.integration.workflow import declare_dataset, png_bytes, ready_inputs, training_body


def _record_count() -> int:
    return int(boto3.client("dynamodb").scan(TableName=TABLE, Select="COUNT")["Count"])


class TestTenancy:
    def test_another_caller_can_touch_nothing(self, api: ApiCaller, other_api: ApiCaller) -> None:
        model_id, dataset_id = ready_inputs(api)
        _, job = api("POST", "/trainings", training_body(model_id, dataset_id))
        job_id = job["id"]
        forbidden = [
            ("GET", f"/models/{model_id}", None),
            ("DELETE", f"/models/{model_id}", None),
            ("POST", f"/models/{model_id}/complete", {"parts": [{"part_number": 1, "etag": "x"}]}),
            ("GET", f"/datasets/{dataset_id}", None),
            ("DELETE", f"/datasets/{dataset_id}", None),
            ("POST", f"/datasets/{dataset_id}/complete", None),
            ("POST", f"/datasets/{dataset_id}/uploads", {"paths": ["1_c/a.png"]}),
            ("GET", f"/trainings/{job_id}", None),
            ("POST", f"/trainings/{job_id}/stop", None),
            ("DELETE", f"/trainings/{job_id}", None),
        ]
        for method, path, body in forbidden:
            status, error = other_api(method, path, body)
            assert status == 404, (method, path, status, error)
            assert error["error"]["code"] == "NOT_FOUND"
        for path in ("/models", "/datasets", "/trainings"):
            assert other_api("GET", path)[1]["items"] == []
        # nor use them to train
        status, error = other_api("POST", "/trainings", training_body(model_id, dataset_id))
        fields = {d["field"] for d in error["error"]["details"]}
        assert status == 404 and fields == {"base_model_id", "dataset_id"}, error
        status, error = other_api(
            "POST",
            "/configs/validate",
            {"fm_type": "sd15", "dataset_id": dataset_id, "instance_type": "ml.g5.2xlarge"},
        )
        assert status == 404
        # and the owner still has everything
        assert api("GET", f"/trainings/{job_id}")[1]["status"] == "STARTING"

    def test_page_tokens_cannot_cross_callers(self, api: ApiCaller, other_api: ApiCaller) -> None:
        for i in range(3):
            api(
                "POST",
                "/models",
                {"name": f"m{i}", "fm_type": "sd15", "filename": "x.safetensors", "size_bytes": 10},
            )
        status, page = api("GET", "/models", query={"limit": "2"})
        assert status == 200 and len(page["items"]) == 2 and page["next_token"]
        status, error = other_api("GET", "/models", query={"limit": "2", "next_token": page["next_token"]})
        assert status == 400 and error["error"]["details"][0]["field"] == "next_token"
        status, error = api("GET", "/datasets", query={"next_token": page["next_token"]})  # other query
        assert status == 400

    def test_unsigned_requests_are_refused(self, aws_emulator: str) -> None:
        from functions.api.handler import lambda_handler
        from tests.integration.conftest import LambdaContextStub

        response = lambda_handler(proxy_event("GET", "/models", None), LambdaContextStub())
        assert response["statusCode"] == 401
        assert json.loads(response["body"])["error"]["code"] == "UNAUTHENTICATED"


class TestPagination:
    def test_lists_are_newest_first_and_complete_across_pages(self, api: ApiCaller) -> None:
        created = [
            api(
                "POST",
                "/models",
                {"name": f"m{i}", "fm_type": "sd15", "filename": "x.safetensors", "size_bytes": 10},
            )[1]["model"]["id"]
            for i in range(5)
        ]
        seen: list[str] = []
        token: str | None = None
        while True:
            query = {"limit": "2", **({"next_token": token} if token else {})}
            page = api("GET", "/models", query=query)[1]
            seen += [m["id"] for m in page["items"]]
            token = page["next_token"]
            if not token:
                break
        assert seen == list(reversed(created))

    def test_filters(self, api: ApiCaller) -> None:
        api(
            "POST", "/models", {"name": "x", "fm_type": "sdxl", "filename": "x.safetensors", "size_bytes": 10}
        )
        assert len(api("GET", "/models", query={"fm_type": "sdxl", "status": "uploading"})[1]["items"]) == 1
        assert api("GET", "/models", query={"fm_type": "sd15"})[1]["items"] == []
        assert api("GET", "/trainings", query={"status": "COMPLETED"})[1]["items"] == []
        status, error = api("GET", "/trainings", query={"status": "DONE"})
        assert status == 400 and error["error"]["details"][0]["field"] == "status"


HOSTILE_MODEL_BODIES: list[tuple[dict[str, Any], str]] = [
    (
        {"name": "x", "fm_type": "sd15", "filename": "../../etc/passwd.safetensors", "size_bytes": 1},
        "filename",
    ),
    ({"name": "x", "fm_type": "sd15", "filename": "model.ckpt", "size_bytes": 1}, "filename"),
    ({"name": "x", "fm_type": "sd15", "filename": "a.safetensors", "size_bytes": -5}, "size_bytes"),
    ({"name": "x", "fm_type": "sd15", "filename": "a.safetensors", "size_bytes": 10**12}, "size_bytes"),
    ({"name": "x", "fm_type": "sd99", "filename": "a.safetensors", "size_bytes": 1}, "fm_type"),
    ({"name": "evil\u202egnp.exe", "fm_type": "sd15", "filename": "a.safetensors", "size_bytes": 1}, "name"),
    ({"name": "zero\u200bwidth", "fm_type": "sd15", "filename": "a.safetensors", "size_bytes": 1}, "name"),
    ({"name": "   ", "fm_type": "sd15", "filename": "a.safetensors", "size_bytes": 1}, "name"),
    ({"name": "x" * 500, "fm_type": "sd15", "filename": "a.safetensors", "size_bytes": 1}, "name"),
    (
        {"name": "x", "fm_type": "sd15", "filename": "a.safetensors", "size_bytes": 1, "owner": "someone"},
        "owner",
    ),
    ({"name": "x", "fm_type": "sd15", "filename": "a.safetensors", "size_bytes": "1e3"}, "size_bytes"),
    (
        {"name": "x", "fm_type": "sd15", "filename": "a.safetensors", "size_bytes": 1, "sha256": "xyz"},
        "sha256",
    ),
]
HOSTILE_DATASET_PATHS = [
    "../10_cat/a.png",
    "/etc/10_cat/a.png",
    "10_cat\\a.png",
    "10_cat/a\x00.png",
    "10_cat/.a.png",
    "cat/a.png",
    "10_cat/a.exe",
    "10_cat/sub/a.png",
    "10_cat/a\u202e.png",
    "C:/10_cat/a.png",
]
HOSTILE_CONFIGS = [
    ({"output_dir": "/tmp/x"}, "config.output_dir"),
    ({"pretrained_model_name_or_path": "s3://other/model"}, "config.pretrained_model_name_or_path"),
    ({"log_with": "wandb"}, "config.log_with"),
    ({"network_module": "os.system"}, "config.network_module"),
    ({"lerning_rate": 1e-4}, "config.lerning_rate"),
    ({"resolution": "512; rm -rf /"}, "config.resolution"),
    ({"optimizer_args": ["weight_decay=__import__('os').system('id')"]}, "config.optimizer_args"),
    ({"network_dim": 10**9}, "config.network_dim"),
]


class TestBadInput:
    @pytest.mark.parametrize(("body", "field"), HOSTILE_MODEL_BODIES)
    def test_hostile_model_registrations_name_the_field_and_write_nothing(
        self, api: ApiCaller, body: dict[str, Any], field: str
    ) -> None:
        before = _record_count()
        status, error = api("POST", "/models", body)
        assert status == 400, error
        assert field in {d["field"] for d in error["error"]["details"]}
        assert _record_count() == before

    @pytest.mark.parametrize("path", HOSTILE_DATASET_PATHS)
    def test_hostile_dataset_paths_are_refused_before_any_upload_url(self, api: ApiCaller, path: str) -> None:
        before = _record_count()
        status, error = declare_dataset(api, {"1_ok/a.png": png_bytes(), path: b"x"})
        assert status == 400
        assert "files[1].path" in {d["field"] for d in error["error"]["details"]}
        assert _record_count() == before

    def test_huge_file_counts_are_refused(self, api: ApiCaller) -> None:
        files = [{"path": f"1_c/{i}.png", "size_bytes": 10} for i in range(MAX_FILES + 1)]
        status, error = api("POST", "/datasets", {"name": "many", "files": files})
        assert status == 400 and error["error"]["details"][0]["field"] == "files"

    @pytest.mark.parametrize(("config", "field"), HOSTILE_CONFIGS)
    def test_hostile_configs_are_refused_with_the_field(
        self, api: ApiCaller, config: dict[str, Any], field: str
    ) -> None:
        status, error = api("POST", "/configs/validate", {"fm_type": "sd15", "config": config})
        assert status == 400 and field in {d["field"] for d in error["error"]["details"]}

    def test_deep_and_oversized_bodies(self, api: ApiCaller) -> None:
        status, error = api(
            "POST",
            "/configs/validate",
            raw_body='{"fm_type": "sd15", "config": ' + "[" * 5000 + "]" * 5000 + "}",
        )
        assert status == 400 and "nested" in error["error"]["message"]
        status, error = api("POST", "/configs/validate", raw_body='{"x": "' + "a" * 3_000_000 + '"}')
        assert status == 413 and error["error"]["code"] == "PAYLOAD_TOO_LARGE"
        assert api("GET", "/configs/defaults", query={"fm_type": "sd15"})[0] == 200  # still serving

    def test_non_image_bytes_with_an_image_extension_make_the_dataset_invalid(self, api: ApiCaller) -> None:
        from tests.integration.workflow import upload_dataset

        dataset = upload_dataset(api, {"1_c/a.png": b"MZ\x90\x00 this is an exe", "1_c/a.txt": b"caption"})
        assert dataset["status"] == "invalid"
        assert any("1_c/a.png: is not a PNG image" in p for p in dataset["manifest"]["problems"])

    def test_a_model_that_is_not_safetensors_is_discarded(self, api: ApiCaller) -> None:
        from tests.integration.workflow import upload_model

        with pytest.raises(AssertionError):
            upload_model(api, b"PK\x03\x04 a zip pretending" + bytes(100))
        assert api("GET", "/models")[1]["items"] == []  # record removed
        assert not boto3.client("s3").list_objects_v2(Bucket=BUCKET, Prefix="models/").get("Contents") or all(
            "PK" not in o["Key"]
            for o in boto3.client("s3").list_objects_v2(Bucket=BUCKET, Prefix="models/")["Contents"]
        )

    def test_wrong_declared_size_is_caught_at_completion(self, api: ApiCaller) -> None:
        import httpx

        status, created = api(
            "POST",
            "/models",
            {"name": "m", "fm_type": "sd15", "filename": "m.safetensors", "size_bytes": 5000},
        )
        part = created["upload"]["parts"][0]
        etag = httpx.put(part["url"], content=b"\x00" * 100).headers["ETag"]
        status, error = api(
            "POST",
            f"/models/{created['model']['id']}/complete",
            {"parts": [{"part_number": 1, "etag": etag}]},
        )
        assert status == 400 and "100 bytes, but 5000 were declared" in error["error"]["message"]


class TestPresigning:
    def test_dataset_puts_are_bound_to_key_length_and_expiry(self, api: ApiCaller) -> None:
        _status, created = declare_dataset(api, {"1_c/a.png": png_bytes()})
        upload = created["uploads"][0]
        url = urlsplit(upload["url"])
        query = parse_qs(url.query)
        assert url.path.endswith("/" + dataset_upload_key(api.owner, created["dataset"]["id"], "1_c/a.png"))
        assert query["X-Amz-Expires"] == ["900"]
        assert "content-length" in query["X-Amz-SignedHeaders"][0].split(";")
        assert upload["headers"] == {"Content-Length": str(len(png_bytes()))}
        assert created["expires_in_seconds"] == 900

    def test_large_datasets_get_urls_in_batches_for_declared_files_only(self, api: ApiCaller) -> None:
        count = UPLOAD_URLS_PER_RESPONSE + 20
        files = [{"path": f"1_c/img{i:04d}.png", "size_bytes": 10 + i} for i in range(count)]
        status, created = api("POST", "/datasets", {"name": "big", "files": files})
        assert status == 201, created
        assert [u["path"] for u in created["uploads"]] == [
            f["path"] for f in files[:UPLOAD_URLS_PER_RESPONSE]
        ]
        assert created["uploads_remaining"] == 20
        dataset_id = created["dataset"]["id"]

        rest = [f["path"] for f in files[UPLOAD_URLS_PER_RESPONSE:]]
        status, batch = api("POST", f"/datasets/{dataset_id}/uploads", {"paths": rest})
        assert status == 200, batch
        assert [u["path"] for u in batch["uploads"]] == rest
        last = batch["uploads"][-1]
        assert urlsplit(last["url"]).path.endswith("/" + dataset_upload_key(api.owner, dataset_id, rest[-1]))
        assert last["headers"] == {"Content-Length": str(10 + count - 1)}

        status, error = api("POST", f"/datasets/{dataset_id}/uploads", {"paths": [rest[0], "1_c/../x.png"]})
        assert status == 400 and error["error"]["details"][0]["field"] == "paths[1]", error
        too_many = {"paths": [f["path"] for f in files[: UPLOAD_URLS_PER_RESPONSE + 1]]}
        status, error = api("POST", f"/datasets/{dataset_id}/uploads", too_many)
        assert status == 400 and "paths" in error["error"]["message"], error

    def test_no_upload_urls_once_a_dataset_is_complete(self, api: ApiCaller) -> None:
        _status, created = declare_dataset(api, {"1_c/a.png": png_bytes()})
        dataset_id = created["dataset"]["id"]
        api("POST", f"/datasets/{dataset_id}/complete")
        status, error = api("POST", f"/datasets/{dataset_id}/uploads", {"paths": ["1_c/a.png"]})
        assert status == 409, error

    def test_model_parts_are_bound_to_the_upload(self, api: ApiCaller) -> None:
        size = 200 * 1024**2
        _status, created = api(
            "POST",
            "/models",
            {"name": "m", "fm_type": "sd15", "filename": "m.safetensors", "size_bytes": size},
        )
        upload = created["upload"]
        assert upload["part_size"] == 64 * 1024**2 and len(upload["parts"]) == 4
        for number, part in enumerate(upload["parts"], start=1):
            query = parse_qs(urlsplit(part["url"]).query)
            assert query["partNumber"] == [str(number)] and query["uploadId"] == [upload["upload_id"]]
            assert query["X-Amz-Expires"] == ["900"]
            assert urlsplit(part["url"]).path.endswith(
                model_object_key(api.owner, created["model"]["id"], "m.safetensors")
            )


def test_state_changes_are_audited(api: ApiCaller) -> None:
    import logging

    from functions.services import job_transitions  # the one module that audits status changes

    class Collect(logging.Handler):
        records: list[logging.LogRecord] = []

        def emit(self, record: logging.LogRecord) -> None:
            self.records.append(record)

    model_id, dataset_id = ready_inputs(api)
    handler, level = Collect(), job_transitions.logger.log_level
    job_transitions.logger.addHandler(handler)
    job_transitions.logger.setLevel("INFO")  # the suite runs with POWERTOOLS_LOG_LEVEL=WARNING
    try:
        _, job = api("POST", "/trainings", training_body(model_id, dataset_id))
    finally:
        job_transitions.logger.removeHandler(handler)
        job_transitions.logger.setLevel(level)
    audits = [r.__dict__ for r in handler.records if getattr(r, "audit", False)]
    assert [(a["from_status"], a["to_status"]) for a in audits] == [
        (None, "PENDING"),
        ("PENDING", "STARTING"),
    ]
    assert all(a["job_id"] == job["id"] and a["owner"] == api.owner and a["cause"] for a in audits)

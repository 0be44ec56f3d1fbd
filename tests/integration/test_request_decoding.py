"""Bodies the API cannot read get a 400 naming the body; wrong JSON types are refused, not coerced."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from tests.integration.conftest import ApiCaller, LambdaContextStub, proxy_event


def _call_base64(api: ApiCaller, path: str, raw: bytes) -> tuple[int, Any]:
    """A request whose body API Gateway base64-encoded (what it does with non-UTF-8 bytes)."""
    from functions.api.handler import lambda_handler

    event = proxy_event("POST", path, api.owner)
    event["body"] = base64.b64encode(raw).decode("ascii")
    event["isBase64Encoded"] = True
    response = lambda_handler(event, LambdaContextStub())
    return int(response["statusCode"]), json.loads(response["body"])


@pytest.mark.parametrize(
    "raw",
    [
        b'{"name": "\xff\xfe", "fm_type": "sd15"}',  # invalid UTF-8 inside a string
        b"\xc3\x28",  # an invalid two-byte sequence
        b'{"name": "caf\xe9"}',  # Latin-1, not UTF-8
    ],
)
def test_a_body_that_is_not_utf8_is_a_400_naming_the_body(api: ApiCaller, raw: bytes) -> None:
    status, body = _call_base64(api, "/models", raw)
    assert status == 400, body
    assert body["error"]["code"] == "INVALID_INPUT"
    assert [d["field"] for d in body["error"]["details"]] == ["body"]
    assert "UTF-8" in body["error"]["details"][0]["problem"]


def test_a_base64_utf8_body_still_works(api: ApiCaller) -> None:
    raw = json.dumps({"name": "café", "fm_type": "sd15", "filename": "x.safetensors"}).encode()
    status, body = _call_base64(api, "/models", raw)
    assert status == 400  # size_bytes is missing: refused for that, not for the encoding
    assert "size_bytes" in json.dumps(body)


def _fields(body: Any) -> set[str]:
    return {d["field"] for d in body["error"]["details"]}


@pytest.mark.parametrize("size", ["12", True, 12.5, "1e3"])
def test_model_size_must_be_a_json_integer(api: ApiCaller, size: Any) -> None:
    status, body = api(
        "POST",
        "/models",
        {"name": "m", "fm_type": "sd15", "filename": "base.safetensors", "size_bytes": size},
    )
    assert status == 400, body
    assert "size_bytes" in _fields(body)


def test_dataset_file_sizes_must_be_integers_and_every_wrong_field_is_named(api: ApiCaller) -> None:
    status, body = api(
        "POST",
        "/datasets",
        {
            "name": "",
            "files": [
                {"path": "10_cat/a.png", "size_bytes": "12"},
                {"path": "10_cat/a.txt", "size_bytes": True},
                {"path": "10_cat/b.png", "size_bytes": 3},
            ],
        },
    )
    assert status == 400, body
    assert {"name", "files[0].size_bytes", "files[1].size_bytes"} <= _fields(body)
    assert "files[2].size_bytes" not in _fields(body)


def test_training_booleans_and_integers_are_strict(api: ApiCaller) -> None:
    status, body = api(
        "POST",
        "/trainings",
        {
            "fm_type": "sd15",
            "base_model_id": "0" * 26,
            "dataset_id": "nope",
            "instance_type": "ml.g5.2xlarge",
            "use_spot": "yes",
            "max_runtime_seconds": "3600",
            "sample_prompts": [{"prompt": "a cat", "seed": "7", "cfg_scale": "7.5"}],
        },
        headers={"Idempotency-Key": "strict-types-1"},
    )
    assert status == 400, body
    assert {
        "use_spot",
        "max_runtime_seconds",
        "dataset_id",
        "sample_prompts[0].seed",
        "sample_prompts[0].cfg_scale",
    } <= _fields(body)


def test_model_parts_and_crop_fields_are_strict(api: ApiCaller) -> None:
    status, body = api(
        "POST", "/models/" + "0" * 26 + "/complete", {"parts": [{"part_number": "1", "etag": "x"}]}
    )
    assert status == 400, body
    assert "parts[0].part_number" in _fields(body)
    status, body = api(
        "POST", "/datasets/" + "0" * 26 + "/crop", {"name": "c", "width": "512", "upscale": "true"}
    )
    assert status == 400, body
    assert {"width", "upscale"} <= _fields(body)


def test_an_undeclared_query_parameter_is_refused_naming_it(api: ApiCaller) -> None:
    status, body = api("GET", "/trainings", query={"statu": "FAILED"})
    assert status == 400, body
    assert _fields(body) == {"statu"}
    assert api("GET", "/trainings", query={"status": "FAILED"})[0] == 200


def _raw_call(api: ApiCaller, method: str, path: str) -> tuple[int, dict[str, Any], Any]:
    from functions.api.handler import lambda_handler

    response = lambda_handler(proxy_event(method, path, api.owner), LambdaContextStub())
    headers = {k: ", ".join(v) for k, v in (response.get("multiValueHeaders") or {}).items()}
    headers.update(response.get("headers") or {})
    return int(response["statusCode"]), headers, json.loads(response["body"])


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PUT", "/models", "GET, POST"),
        ("PATCH", "/trainings/0123456789abcdefghijklmnop", "DELETE, GET"),
        ("GET", "/trainings/0123456789abcdefghijklmnop/stop", "POST"),
        ("DELETE", "/configs/defaults/", "GET"),  # a trailing slash routes as without one
    ],
)
def test_a_method_the_path_does_not_have_is_a_405_with_allow(
    api: ApiCaller, method: str, path: str, allowed: str
) -> None:
    status, headers, body = _raw_call(api, method, path)
    assert status == 405, body
    assert headers["Allow"] == allowed
    assert body["error"]["code"] == "METHOD_NOT_ALLOWED"


def test_an_unknown_path_is_a_404_and_a_known_one_still_routes(api: ApiCaller) -> None:
    status, headers, body = _raw_call(api, "GET", "/trainings/0123456789abcdefghijklmnop/nothing")
    assert status == 404 and "Allow" not in headers
    assert body["error"]["code"] == "NOT_FOUND"
    assert _raw_call(api, "GET", "/models")[0] == 200


def test_config_validation_checks_an_instance_type_given_alone(api: ApiCaller) -> None:
    status, body = api("POST", "/configs/validate", {"fm_type": "sdxl", "instance_type": "AAA"})
    assert status == 400 and "instance_type" in _fields(body), body

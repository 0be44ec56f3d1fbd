"""openapi.yaml is generated from the resolver and its pydantic models: the two cannot drift."""

from __future__ import annotations

from pathlib import Path

import yaml

from functions.api.openapi import generate_spec, render_yaml

OPENAPI = Path(__file__).resolve().parents[2] / "openapi.yaml"
EXPECTED_OPERATIONS = {
    ("post", "/models"),
    ("get", "/models"),
    ("get", "/models/{model_id}"),
    ("delete", "/models/{model_id}"),
    ("post", "/models/{model_id}/complete"),
    ("post", "/datasets"),
    ("get", "/datasets"),
    ("get", "/datasets/{dataset_id}"),
    ("delete", "/datasets/{dataset_id}"),
    ("post", "/datasets/{dataset_id}/complete"),
    ("post", "/datasets/{dataset_id}/uploads"),
    ("post", "/datasets/{dataset_id}/crop"),
    ("post", "/datasets/{dataset_id}/captions"),
    ("get", "/datasets/{dataset_id}/files"),
    ("get", "/configs/defaults"),
    ("post", "/configs/validate"),
    ("post", "/trainings"),
    ("get", "/trainings"),
    ("get", "/trainings/{job_id}"),
    ("post", "/trainings/{job_id}/stop"),
    ("delete", "/trainings/{job_id}"),
    ("get", "/trainings/{job_id}/logs"),
    ("get", "/trainings/{job_id}/metrics"),
}


def test_committed_spec_is_what_the_code_generates() -> None:
    assert OPENAPI.read_text() == render_yaml(generate_spec()), (
        "openapi.yaml is stale: run `.venv/bin/python -m functions.api.openapi > openapi.yaml`"
    )


def test_every_route_of_the_product_is_in_the_spec() -> None:
    spec = yaml.safe_load(OPENAPI.read_text())
    operations = {(m, p) for p, ops in spec["paths"].items() for m in ops}
    assert operations == EXPECTED_OPERATIONS


def test_errors_are_documented_with_the_one_error_body() -> None:
    spec = yaml.safe_load(OPENAPI.read_text())
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            assert "422" not in op["responses"], (method, path)
            for code, response in op["responses"].items():
                if int(code) >= 400:
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (method, path, code)
            assert "400" in op["responses"] and "401" in op["responses"], (method, path)
    error = spec["components"]["schemas"]["ErrorInfo"]
    assert set(error["required"]) == {"code", "message"} and "details" in error["properties"]


def test_spec_declares_sigv4_on_every_operation() -> None:
    spec = yaml.safe_load(OPENAPI.read_text())
    assert spec["security"] == [{"sigv4": []}]
    assert spec["components"]["securitySchemes"]["sigv4"]["in"] == "header"

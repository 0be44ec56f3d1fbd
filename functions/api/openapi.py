"""Generate ``openapi.yaml`` from the resolver: the code is the contract's source.

    python -m functions.api.openapi > openapi.yaml

Powertools documents a 422 "HTTPValidationError" on every route, but the API answers validation
failures with 400 and the one error shape (see ``functions.api.app``); that entry is replaced
so the documented bodies are the bodies really returned. A test fails when the committed file
differs from what this module generates.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import yaml

from functions.domain.families import FAMILIES

TITLE = "lora-on-aws training API"
VERSION = "1.0.0"
DESCRIPTION = (
    "Serverless LoRA training for Stable Diffusion ("
    + " / ".join(spec.display_name for spec in FAMILIES.values())
    + ") with Kohya-SS on SageMaker. "
    "Every request is signed with AWS SigV4 (service execute-api); the caller's IAM identity owns "
    "what it creates and sees only that."
)
_PLACEHOLDER_ENV = {
    "TABLE_NAME": "-",
    "IDEMPOTENCY_TABLE_NAME": "-",
    "BUCKET_NAME": "-",
    "PAGE_TOKEN_SECRET": "-",
}


def _replace_validation_errors(spec: dict[str, Any]) -> None:
    error_ref = {"$ref": "#/components/schemas/ErrorBody"}
    for operations in spec.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.get("responses", {})
            responses.pop("422", None)
            responses.setdefault(
                "400",
                {
                    "description": "Invalid input; details name each field and its problem",
                    "content": {"application/json": {"schema": error_ref}},
                },
            )
    schemas = spec.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)


def _drop_bodies_of_204(spec: dict[str, Any]) -> None:
    """A 204 has no body (RFC 9110 section 15.3.5); Powertools documents the handler's return type."""
    for operations in spec.get("paths", {}).values():
        for operation in operations.values():
            no_content = operation.get("responses", {}).get("204")
            if no_content is not None:
                no_content.pop("content", None)


def _instance_type_rules(spec: dict[str, Any]) -> None:
    """``instance_type``: the deployment's allowed types (the defaults; a deployment with another
    list regenerates its spec), and for each family only those with enough GPU memory
    (functions.domain.job_rules.instance_problems), as JSON Schema ``if``/``then``."""
    from functions.domain.catalog import INSTANCE_TYPES, FmType, instance_supports
    from functions.settings import DEFAULTS

    allowed = [t for t in DEFAULTS.allowed_instance_types if t in INSTANCE_TYPES]
    schemas = spec.get("components", {}).get("schemas", {})
    for name, nullable in (("CreateTrainingRequest", False), ("ValidateConfigRequest", True)):
        schema = schemas.get(name)
        if schema is None:
            continue
        prop = schema["properties"]["instance_type"]
        prop["enum"] = [*allowed, None] if nullable else list(allowed)
        rules = []
        for family in FmType:
            fitting = [t for t in allowed if instance_supports(INSTANCE_TYPES[t], family)]
            if fitting != allowed:
                rules.append(
                    {
                        "if": {"properties": {"fm_type": {"const": family.value}}, "required": ["fm_type"]},
                        "then": {
                            "properties": {
                                "instance_type": {"enum": [*fitting, None] if nullable else fitting}
                            }
                        },
                    }
                )
        if rules:
            schema["allOf"] = rules


def generate_spec() -> dict[str, Any]:
    for key, value in _PLACEHOLDER_ENV.items():
        os.environ.setdefault(key, value)
    from aws_lambda_powertools.event_handler.openapi.models import APIKey

    from functions.api.app import app

    raw = app.get_openapi_json_schema(
        title=TITLE,
        version=VERSION,
        description=DESCRIPTION,
        security_schemes={
            "sigv4": APIKey.model_validate(
                {
                    "type": "apiKey",
                    "name": "Authorization",
                    "in": "header",
                    "description": "AWS SigV4 (service execute-api): API Gateway IAM authorization",
                }
            )
        },
        security=[{"sigv4": []}],
    )
    spec: dict[str, Any] = json.loads(raw)
    _replace_validation_errors(spec)
    _drop_bodies_of_204(spec)
    _instance_type_rules(spec)
    return spec


def render_yaml(spec: dict[str, Any]) -> str:
    return yaml.safe_dump(spec, sort_keys=False, allow_unicode=True, width=100)


if __name__ == "__main__":
    sys.stdout.write(render_yaml(generate_spec()))

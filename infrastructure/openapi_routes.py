"""API Gateway routes and request validation generated from ``openapi.yaml`` (no second list).

API Gateway models use JSON Schema draft 4: ``$ref``s are inlined, OpenAPI 3.1's nullable
``anyOf`` collapses to the non-null branch (null means "omitted" for these fields) and numeric
``exclusiveMinimum`` becomes draft 4's boolean form. The handler validates again, fully.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

OPENAPI = Path(__file__).resolve().parents[1] / "openapi.yaml"
_DRAFT4_KEYS = {
    "type", "properties", "required", "items", "enum", "minimum", "maximum", "exclusiveMinimum",
    "exclusiveMaximum", "minLength", "maxLength", "pattern", "minItems", "maxItems",
    "additionalProperties", "description", "title", "format",
}  # fmt: skip


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    body_schema: dict[str, Any] | None
    required_query: tuple[str, ...]
    optional_query: tuple[str, ...]
    required_headers: tuple[str, ...]


def load_spec(path: Path = OPENAPI) -> dict[str, Any]:
    return dict(yaml.safe_load(path.read_text()))


def _resolve(node: Any, components: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        if "$ref" in node:
            return _resolve(components[node["$ref"].rsplit("/", 1)[-1]], components)
        return {k: _resolve(v, components) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve(v, components) for v in node]
    return node


def to_draft4(schema: Any) -> Any:
    """Reduce an OpenAPI 3.1 (JSON Schema 2020-12) schema to API Gateway's draft 4 subset."""
    if isinstance(schema, list):
        return [to_draft4(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    if "anyOf" in schema:
        branches = [b for b in schema["anyOf"] if b.get("type") != "null"]
        if len(branches) == 1:
            return to_draft4({**{k: v for k, v in schema.items() if k != "anyOf"}, **branches[0]})
        return {"anyOf": [to_draft4(b) for b in branches]}
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key not in _DRAFT4_KEYS:
            continue
        if key == "properties":
            out[key] = {name: to_draft4(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = to_draft4(value)
        elif key == "exclusiveMinimum" and not isinstance(value, bool):
            out["minimum"], out["exclusiveMinimum"] = value, True
        elif key == "exclusiveMaximum" and not isinstance(value, bool):
            out["maximum"], out["exclusiveMaximum"] = value, True
        elif key == "enum":
            out[key] = [v for v in value if v is not None]
        else:
            out[key] = value
    return out


def routes(spec: dict[str, Any] | None = None) -> list[Route]:
    spec = spec or load_spec()
    components = spec.get("components", {}).get("schemas", {})
    found: list[Route] = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            params = operation.get("parameters", [])
            body = (
                operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            )
            found.append(
                Route(
                    method=method.upper(),
                    path=path,
                    body_schema=to_draft4(_resolve(body, components)) if body else None,
                    required_query=tuple(
                        p["name"] for p in params if p["in"] == "query" and p.get("required")
                    ),
                    optional_query=tuple(
                        p["name"] for p in params if p["in"] == "query" and not p.get("required")
                    ),
                    required_headers=tuple(
                        p["name"] for p in params if p["in"] == "header" and p.get("required")
                    ),
                )
            )
    return found

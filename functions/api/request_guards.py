"""Cheap checks on the raw request, before any parsing: size and JSON nesting.

Run before Powertools parses the body, so a hostile body can neither exhaust memory nor blow
Python's recursion limit inside ``json.loads``.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from functions.domain.errors import PayloadTooLarge, UnsupportedMediaType, invalid

MAX_BODY_BYTES = 2 * 1024 * 1024  # room for a 5,000-file dataset declaration
MAX_JSON_DEPTH = 16


def json_depth(text: str) -> int:
    """Deepest nesting of objects/arrays, ignoring brackets inside strings."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
            if deepest > MAX_JSON_DEPTH:
                return deepest
        elif char in "]}":
            depth -= 1
    return deepest


def _content_type(event: dict[str, Any]) -> str:
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    return headers.get("content-type", "application/json").split(";")[0].strip().lower()


def _decoded_text(encoded: str) -> str:
    """A base64 body as text: JSON must be UTF-8 (RFC 8259 section 8.1), so other bytes are a 400,
    not the UnicodeDecodeError the resolver would raise later (a 500)."""
    try:
        raw = base64.b64decode(encoded, validate=True)
    except ValueError as error:
        raise invalid("body", "is not valid base64") from error
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise invalid(
            "body", f"is not valid UTF-8 (byte {error.start}): JSON bodies must be UTF-8"
        ) from error


def check_body(event: dict[str, Any]) -> None:
    body = event.get("body") or ""
    if body and _content_type(event) not in ("application/json", ""):
        raise UnsupportedMediaType("request bodies must be application/json")
    size = len(body) * 3 // 4 if event.get("isBase64Encoded") else len(body.encode("utf-8"))
    if size > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"request body is {size} bytes; the limit is {MAX_BODY_BYTES}")
    if event.get("isBase64Encoded") and body:
        body = _decoded_text(body)
    if json_depth(body) > MAX_JSON_DEPTH:
        raise invalid("body", f"JSON is nested deeper than {MAX_JSON_DEPTH} levels")
    if body:
        try:
            json.loads(body)
        except ValueError as error:
            raise invalid("body", f"is not valid JSON ({error})") from error

"""Opaque pagination tokens, HMAC-signed and bound to the caller and the query.

A token is the DynamoDB ``LastEvaluatedKey`` plus the owner and query it belongs to, signed with
a server secret. A forged, altered or another caller's token is refused, so it cannot be used to
read someone else's partition or to replay a query with other filters.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

from functions.domain.errors import invalid

# What encode_token produces: base64url payload "." base64url signature (no padding).
PAGE_TOKEN_PATTERN = r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(secret: bytes, payload: bytes) -> bytes:
    return hmac.new(secret, payload, hashlib.sha256).digest()[:16]


def encode_token(secret: bytes, owner: str, query: str, last_key: dict[str, Any]) -> str:
    payload = json.dumps({"o": owner, "q": query, "k": last_key}, separators=(",", ":"), sort_keys=True)
    raw = payload.encode("utf-8")
    return f"{_b64(raw)}.{_b64(_signature(secret, raw))}"


def decode_token(secret: bytes, owner: str, query: str, token: str) -> dict[str, Any]:
    """The ``ExclusiveStartKey`` inside a valid token, else a 400 naming ``next_token``."""
    try:
        body, sig = token.split(".", 1)
        raw = _unb64(body)
        valid = hmac.compare_digest(_signature(secret, raw), _unb64(sig))
        data = json.loads(raw) if valid else None
    except (ValueError, UnicodeDecodeError):
        data = None
    if not isinstance(data, dict) or data.get("o") != owner or data.get("q") != query:
        raise invalid("next_token", "is not a valid page token for this query")
    last_key = data.get("k")
    if not isinstance(last_key, dict):
        raise invalid("next_token", "is not a valid page token for this query")
    return last_key

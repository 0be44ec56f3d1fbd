"""The caller: API Gateway's IAM identity (SigV4), the owner of everything they create."""

from __future__ import annotations

from typing import Any

from functions.domain.errors import Unauthenticated


def caller_from_event(event: dict[str, Any]) -> str:
    identity = ((event.get("requestContext") or {}).get("identity")) or {}
    owner = identity.get("userArn") or identity.get("caller")
    if not isinstance(owner, str) or not owner:
        raise Unauthenticated("requests must be signed (SigV4): no caller identity")
    return owner

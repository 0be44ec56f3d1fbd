"""Stand-in Lambda handlers for testing the local runtime's plumbing on its own.

``echo_api`` answers every request with the API Gateway event it received (so tests can check
the event the runtime builds); ``ignore_events`` accepts SageMaker events and does nothing.
"""

from __future__ import annotations

import base64
import json
from typing import Any


def echo_api(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if event["path"] == "/binary":
        return {
            "statusCode": 200,
            "headers": {"Content-Type": "image/png"},
            "body": base64.b64encode(b"\x89PNG\x00").decode(),
            "isBase64Encoded": True,
        }
    payload = {
        "event": event,
        "function_name": context.function_name,
        "remaining_ms": context.get_remaining_time_in_millis(),
    }
    return {
        "statusCode": 200,
        "headers": {"Content-Type": "application/json"},
        "multiValueHeaders": {"X-Multi": ["a", "b"]},
        "body": json.dumps(payload),
    }


def ignore_events(event: dict[str, Any], context: Any) -> None:
    return None

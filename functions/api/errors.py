"""One error shape for every non-2xx answer, and the OpenAPI documentation of it."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response, content_types

from functions.api.schemas.common import ErrorBody, ErrorDetail, ErrorInfo
from functions.domain.errors import ServiceError

ERROR_DESCRIPTIONS: dict[int, str] = {
    400: "Invalid input; details name each field and its problem",
    401: "No caller identity",
    404: "Unknown, or not yours",
    409: "Conflict with the current state (wrong status, in use, idempotency key reused)",
    413: "Request body too large",
    415: "Request body is not application/json",
    429: "A per-owner limit was reached",
}


def error_response(
    status: int, code: str, message: str, details: list[ErrorDetail] | None = None
) -> Response[Any]:
    body = ErrorBody(error=ErrorInfo(code=code, message=message, details=details or []))
    return Response(
        status_code=status, content_type=content_types.APPLICATION_JSON, body=body.model_dump_json()
    )


def service_error_response(error: ServiceError) -> Response[Any]:
    details = [ErrorDetail(field=d.field, problem=d.problem) for d in error.details]
    return error_response(error.status, error.code, error.message, details)


def error_responses(*statuses: int) -> Any:
    """The ``responses=`` entries documenting the error body for a route."""
    return {
        status: {
            "description": ERROR_DESCRIPTIONS[status],
            "content": {"application/json": {"model": ErrorBody}},
        }
        for status in statuses
    }


def field_name(location: tuple[Any, ...] | list[Any]) -> str:
    """A pydantic error location as the field a caller knows: ``body.files.3.path`` -> ``files[3].path``."""
    parts = [str(p) for p in location]
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    name = ""
    for part in parts:
        if part.isdigit():
            name += f"[{part}]"
        else:
            name += ("." if name else "") + part
    return name or "body"

"""Typed domain errors. The HTTP layer maps each to one status code and the one error body shape."""

from __future__ import annotations

from collections.abc import Sequence

from functions.domain.kohya_params import FieldProblem


class ServiceError(Exception):
    """Base of every error a caller may see; ``code`` is stable, ``message`` is for people."""

    status = 500
    code = "INTERNAL_ERROR"

    def __init__(self, message: str, details: Sequence[FieldProblem] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.details = list(details)


class InvalidInput(ServiceError):
    status = 400
    code = "INVALID_INPUT"


class Unauthenticated(ServiceError):
    status = 401
    code = "UNAUTHENTICATED"


class NotFound(ServiceError):
    """Unknown *or not yours*: the two are indistinguishable on purpose."""

    status = 404
    code = "NOT_FOUND"


class Conflict(ServiceError):
    status = 409
    code = "CONFLICT"


class PayloadTooLarge(ServiceError):
    status = 413
    code = "PAYLOAD_TOO_LARGE"


class UnsupportedMediaType(ServiceError):
    status = 415
    code = "UNSUPPORTED_MEDIA_TYPE"


class MethodNotAllowed(ServiceError):
    status = 405
    code = "METHOD_NOT_ALLOWED"


class LimitExceeded(ServiceError):
    status = 429
    code = "LIMIT_EXCEEDED"


def invalid(field: str, problem: str) -> InvalidInput:
    """A one-field InvalidInput whose message names the field."""
    return InvalidInput(f"{field} {problem}", [FieldProblem(field, problem)])


def invalid_all(problems: Sequence[FieldProblem], what: str = "request") -> InvalidInput:
    fields = ", ".join(p.field for p in problems[:5])
    more = f" and {len(problems) - 5} more" if len(problems) > 5 else ""
    return InvalidInput(f"invalid {what}: {fields}{more}", problems)

"""The REST resolver: routers, validation, and the one error handler for every failure."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyValidationError,
)

from functions.api.errors import error_response, field_name, service_error_response
from functions.api.route_table import RouteTable
from functions.api.routes import configs, datasets, models, training_observability, trainings
from functions.api.schemas.common import ErrorDetail
from functions.domain.errors import ServiceError

logger = Logger(child=True)

app = APIGatewayRestResolver(enable_validation=True)
for _router in (
    models.router,
    datasets.router,
    configs.router,
    trainings.router,
    training_observability.router,
):
    app.include_router(_router)


# The operations as the contract lists them (functions/api/route_table.py): built once, here,
# after every router is included.
ROUTES = RouteTable(json.loads(app.get_openapi_json_schema())["paths"])


def refuse_undeclared_query_parameters(
    resolver: APIGatewayRestResolver, next_middleware: Any
) -> Response[Any]:
    """A query parameter the operation does not declare is a 400 naming it, as an unknown body
    field is (``extra="forbid"``): a misspelt ``?statu=`` must not silently list everything."""
    event = resolver.current_event
    operation = ROUTES.operation(event.http_method, event.path)  # None: a 404/405 answer follows
    if operation is not None:
        given = event.multi_value_query_string_parameters or {}
        unknown = sorted(set(given) - operation.query_parameters)
        if unknown:
            details = [
                ErrorDetail(field=name, problem="is not a query parameter of this operation")
                for name in unknown
            ]
            return error_response(400, "INVALID_INPUT", f"invalid request: {', '.join(unknown)}", details)
    response: Response[Any] = next_middleware(resolver)
    return response


app.use([refuse_undeclared_query_parameters])


@app.exception_handler(ServiceError)
def handle_service_error(error: ServiceError) -> Response[Any]:
    return service_error_response(error)


@app.exception_handler(RequestValidationError)
def handle_validation_error(error: RequestValidationError) -> Response[Any]:
    """Powertools answers 422 in its own shape by default; the API promises 400 in the one shape."""
    details = [
        ErrorDetail(field=field_name(e.get("loc", ())), problem=str(e.get("msg", "is invalid")))
        for e in error.errors()
    ]
    names = ", ".join(d.field for d in details[:5])
    return error_response(400, "INVALID_INPUT", f"invalid request: {names}", details)


@app.exception_handler(IdempotencyValidationError)
def handle_idempotency_mismatch(_: IdempotencyValidationError) -> Response[Any]:
    return error_response(
        409,
        "IDEMPOTENCY_KEY_REUSED",
        "this Idempotency-Key was already used with a different request body",
        [ErrorDetail(field="Idempotency-Key", problem="was used for another request")],
    )


@app.exception_handler(IdempotencyAlreadyInProgressError)
def handle_idempotency_in_progress(_: IdempotencyAlreadyInProgressError) -> Response[Any]:
    return error_response(
        409,
        "REQUEST_IN_PROGRESS",
        "a request with this Idempotency-Key is still being processed; retry shortly",
    )


@app.not_found
def handle_not_found(_: NotFoundError) -> Response[Any]:
    event = app.current_event
    allowed = ROUTES.allowed_methods(event.path)
    if allowed:
        message = f"{event.http_method} is not allowed on {event.path}"
        response = error_response(405, "METHOD_NOT_ALLOWED", message)
        response.headers["Allow"] = ", ".join(allowed)
        return response
    return error_response(404, "NOT_FOUND", f"no route {event.http_method} {event.path}")


@app.exception_handler(Exception)
def handle_unexpected(error: Exception) -> Response[Any]:
    logger.exception("unhandled error")
    return error_response(500, "INTERNAL_ERROR", "internal error; the request id is in the logs")

"""What every route needs: the caller and the use-case context."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router
from pydantic import BaseModel

from functions.services.context import ServiceContext, service_context


def owner_of(router: Router) -> str:
    owner = router.context.get("owner")
    assert isinstance(owner, str), "the handler sets the caller before routing"
    return owner


def ctx() -> ServiceContext:
    return service_context()


def created(body: BaseModel) -> Response[Any]:
    return Response(status_code=201, content_type=content_types.APPLICATION_JSON, body=body.model_dump_json())


def accepted(body: BaseModel) -> Response[Any]:
    """202: the work was accepted and goes on in the background; the body says what to poll."""
    return Response(status_code=202, content_type=content_types.APPLICATION_JSON, body=body.model_dump_json())


def no_content() -> Response[Any]:
    return Response(status_code=204, body="")


def success(status: int, model: type[BaseModel], description: str) -> Any:
    return {status: {"description": description, "content": {"application/json": {"model": model}}}}

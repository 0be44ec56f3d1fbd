"""/models: upload base checkpoints (multipart, presigned), list, read, delete."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Path, Query

from functions.api.errors import error_responses
from functions.api.routes.common import accepted, created, ctx, no_content, owner_of, success
from functions.api.schemas.common import RecordId
from functions.api.schemas.models import (
    CompleteModelRequest,
    CreateModelRequest,
    ModelCreated,
    ModelList,
    ModelView,
)
from functions.domain.catalog import FmType, ModelKind, ResourceStatus
from functions.domain.page_tokens import PAGE_TOKEN_PATTERN
from functions.services import model_import, models

router = Router()
ModelId = Annotated[str, Path(pattern=r"^[0-9a-z]{26}$", description="model id")]


@router.post(
    "/models",
    summary="Register a model: a presigned multipart upload, or an import from source_url",
    responses=success(201, ModelCreated, "Registered; upload each part to its URL, then complete")
    | success(202, ModelCreated, "Import accepted: the model is processing; poll GET /models/{id}")
    | error_responses(400, 401, 413, 415, 429),
    tags=["models"],
)
def create_model(request: CreateModelRequest) -> Response[Any]:
    if request.source_url is not None:
        return accepted(model_import.create_import(ctx(), owner_of(router), request))
    return created(models.create_model(ctx(), owner_of(router), request))


@router.post(
    "/models/<model_id>/complete",
    summary="Complete the multipart upload; verifies size and safetensors header",
    responses=success(200, ModelView, "The model, ready") | error_responses(400, 401, 404, 409, 413, 415),
    tags=["models"],
)
def complete_model(model_id: ModelId, request: CompleteModelRequest) -> ModelView:
    return models.complete_model(ctx(), owner_of(router), model_id, request)


@router.get(
    "/models",
    summary="List your models, newest first",
    responses=success(200, ModelList, "One page") | error_responses(400, 401),
    tags=["models"],
)
def list_models(
    kind: Annotated[ModelKind | None, Query()] = None,
    fm_type: Annotated[FmType | None, Query()] = None,
    status: Annotated[ResourceStatus | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    next_token: Annotated[str | None, Query(max_length=2048, pattern=PAGE_TOKEN_PATTERN)] = None,
) -> ModelList:
    return models.list_models(
        ctx(),
        owner_of(router),
        kind=kind,
        fm_type=fm_type.value if fm_type else None,
        status=status.value if status else None,
        limit=limit,
        next_token=next_token,
    )


@router.get(
    "/models/<model_id>",
    summary="Read a model (with presigned download URLs once ready; ?epoch= picks a saved epoch)",
    responses=success(200, ModelView, "The model") | error_responses(400, 401, 404),
    tags=["models"],
)
def get_model(
    model_id: ModelId,
    epoch: Annotated[
        int | None,
        Query(ge=1, le=1_000_000, description="make download_url this saved epoch's LoRA version"),
    ] = None,
) -> ModelView:
    return models.get_model(ctx(), owner_of(router), model_id, epoch)


@router.delete(
    "/models/<model_id>",
    summary="Delete a model and its file (refused while an active job uses it)",
    responses={204: {"description": "Deleted"}} | error_responses(400, 401, 404, 409),
    tags=["models"],
)
def delete_model(model_id: ModelId) -> Response[Any]:
    models.delete_model(ctx(), owner_of(router), model_id)
    return no_content()


__all__ = ["RecordId", "router"]

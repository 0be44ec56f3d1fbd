"""/trainings: start (idempotent), follow, list, stop and delete LoRA training jobs."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Header, Path, Query

from functions.api.errors import error_responses
from functions.api.idempotency import start_training_once
from functions.api.routes.common import created, ctx, no_content, owner_of, success
from functions.api.schemas.trainings import CreateTrainingRequest, TrainingJobList, TrainingJobView
from functions.domain.errors import invalid
from functions.domain.page_tokens import PAGE_TOKEN_PATTERN
from functions.domain.statuses import JobStatus
from functions.services import trainings

router = Router()
JobId = Annotated[str, Path(pattern=r"^[0-9a-z]{26}$", description="training job id")]


@router.post(
    "/trainings",
    summary="Start a LoRA training job (send an Idempotency-Key to retry safely)",
    responses=success(201, TrainingJobView, "The job (FAILED with a reason if SageMaker refused it)")
    | error_responses(400, 401, 404, 409, 413, 415, 429),
    tags=["trainings"],
)
def create_training(
    request: CreateTrainingRequest,
    idempotency_key: Annotated[
        str | None,
        Header(
            min_length=1,
            max_length=128,
            pattern=r"\S",
            description="retries with the same key start at most one job (1 to 128 characters, not blank)",
        ),
    ] = None,
) -> Response[Any]:
    key = idempotency_key or router.current_event.headers.get("Idempotency-Key")
    owner = owner_of(router)
    if key is None:
        return created(trainings.create_training(ctx(), owner, request))
    if not key.strip() or len(key) > 128:
        raise invalid("Idempotency-Key", "must be 1 to 128 characters")
    return created(start_training_once(owner, key, request))


@router.get(
    "/trainings",
    summary="List your training jobs, newest first",
    responses=success(200, TrainingJobList, "One page") | error_responses(400, 401),
    tags=["trainings"],
)
def list_trainings(
    status: Annotated[JobStatus | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    next_token: Annotated[str | None, Query(max_length=2048, pattern=PAGE_TOKEN_PATTERN)] = None,
) -> TrainingJobList:
    return trainings.list_trainings(
        ctx(), owner_of(router), status=status, limit=limit, next_token=next_token
    )


@router.get(
    "/trainings/<job_id>",
    summary="Read a job: status, live progress (step, loss, ETA), plan, and its LoRA once completed",
    responses=success(200, TrainingJobView, "The job") | error_responses(400, 401, 404),
    tags=["trainings"],
)
def get_training(job_id: JobId) -> TrainingJobView:
    return trainings.get_training(ctx(), owner_of(router), job_id)


@router.post(
    "/trainings/<job_id>/stop",
    summary="Stop a job (it ends STOPPED; a LoRA is kept only if it completed first)",
    responses=success(200, TrainingJobView, "The job, STOPPING") | error_responses(400, 401, 404, 409),
    tags=["trainings"],
)
def stop_training(job_id: JobId) -> TrainingJobView:
    return trainings.stop_training(ctx(), owner_of(router), job_id)


@router.delete(
    "/trainings/<job_id>",
    summary="Delete an ended job; its LoRA is kept unless delete_lora=true",
    responses={204: {"description": "Deleted"}} | error_responses(400, 401, 404, 409),
    tags=["trainings"],
)
def delete_training(job_id: JobId, delete_lora: Annotated[bool, Query()] = False) -> Response[Any]:
    trainings.delete_training(ctx(), owner_of(router), job_id, delete_lora=delete_lora)
    return no_content()

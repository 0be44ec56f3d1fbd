"""/trainings/{id}/logs and /trainings/{id}/metrics: a job's log and loss curve, owner only."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Query

from functions.api.errors import error_responses
from functions.api.routes.common import ctx, owner_of, success
from functions.api.routes.trainings import JobId
from functions.api.schemas.training_observability import TrainingLogPage, TrainingMetrics
from functions.domain.training_contract import MAX_METRIC_POINTS
from functions.domain.training_logs import DEFAULT_LOG_PAGE_LINES, MAX_LOG_PAGE_LINES, LogStart
from functions.services import training_observability

router = Router()


@router.get(
    "/trainings/<job_id>/logs",
    summary="Read a job's log: the newest lines (or the first), then older or newer pages by token",
    responses=success(200, TrainingLogPage, "One page of lines, oldest first (empty before the job starts)")
    | error_responses(400, 401, 404),
    tags=["trainings"],
)
def get_training_logs(
    job_id: JobId,
    limit: Annotated[
        int, Query(ge=1, le=MAX_LOG_PAGE_LINES, description="lines per page")
    ] = DEFAULT_LOG_PAGE_LINES,
    start: Annotated[
        LogStart, Query(description="without a token: the newest lines (tail) or the first (head)")
    ] = LogStart.TAIL,
    next_token: Annotated[
        str | None,
        Query(max_length=2048, description="next_token (newer lines) or previous_token (older) of a page"),
    ] = None,
) -> TrainingLogPage:
    return training_observability.read_training_log(
        ctx(), owner_of(router), job_id, limit=limit, next_token=next_token, start=start
    )


@router.get(
    "/trainings/<job_id>/metrics",
    summary=f"Read a job's loss curve: step, epoch, loss, learning rate (at most {MAX_METRIC_POINTS} points)",
    responses=success(200, TrainingMetrics, "The curve (no points before the first step)")
    | error_responses(400, 401, 404),
    tags=["trainings"],
)
def get_training_metrics(job_id: JobId) -> TrainingMetrics:
    return training_observability.read_training_metrics(ctx(), owner_of(router), job_id)

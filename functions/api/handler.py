"""Lambda entry point of the REST API (API Gateway REST proxy events, IAM auth)."""

from __future__ import annotations

import random
import warnings
from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.adapters.aws_clients import preload_service_models
from functions.api.app import app
from functions.api.idempotency import register_invocation
from functions.api.identity import caller_from_event
from functions.api.request_guards import check_body
from functions.api.schemas.common import ErrorBody, ErrorDetail, ErrorInfo
from functions.domain.errors import ServiceError
from functions.observability import build_metrics, cold_start_metric_enabled
from functions.services.context import service_context

logger = Logger()
tracer = Tracer()
metrics = build_metrics()
# Read routes publish no business metric; the cold-start metric is enough.
warnings.filterwarnings("ignore", message="No application metrics to publish")


def register_snapstart_hooks() -> bool:
    """SnapStart (this function's published versions, README "Cold starts"): parse the botocore
    models into the snapshot, and reseed ``random`` in each restored environment, which would
    otherwise share the snapshot's state (Lambda docs "Handling uniqueness with Lambda
    SnapStart"; ids and tokens here use ``secrets``/``os.urandom``, which need nothing).
    Clients, credentials and the page-token key are created after restore, on first use.
    ``snapshot_restore_py`` exists only in Lambda's Python runtimes: elsewhere, nothing to do."""
    try:
        from snapshot_restore_py import (
            register_after_restore,
            register_before_snapshot,
        )
    except ImportError:
        return False
    register_before_snapshot(preload_service_models)
    register_after_restore(random.seed)
    return True


register_snapstart_hooks()


def _refusal(error: ServiceError) -> dict[str, Any]:
    """A proxy response for requests refused before routing (no identity, oversized, too deep)."""
    body = ErrorBody(
        error=ErrorInfo(
            code=error.code,
            message=error.message,
            details=[ErrorDetail(field=d.field, problem=d.problem) for d in error.details],
        )
    )
    return {
        "statusCode": error.status,
        "headers": {"Content-Type": "application/json"},
        "body": body.model_dump_json(),
        "isBase64Encoded": False,
    }


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=cold_start_metric_enabled())
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    register_invocation(context)
    try:
        owner = caller_from_event(event, service_context().settings.owner_session_roles)
        check_body(event)
    except ServiceError as error:
        return _refusal(error)
    logger.append_keys(owner=owner)
    app.append_context(owner=owner)
    return app.resolve(event, context)

"""Lambda entry point of the scheduled reconciler (the use case: functions.services.reconciliation)."""

from __future__ import annotations

import warnings
from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.observability import build_metrics, cold_start_metric_enabled
from functions.services.context import service_context
from functions.services.reconciliation import reconcile

logger = Logger()
tracer = Tracer()
metrics = build_metrics()
warnings.filterwarnings("ignore", message="No application metrics to publish")


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=cold_start_metric_enabled())
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, int]:
    counts = reconcile(service_context())
    metrics.add_metric(
        name="JobsRepaired", unit=MetricUnit.Count, value=counts["repaired"] + counts["failed-unlaunched"]
    )
    logger.info("reconciled", extra=counts)
    return counts

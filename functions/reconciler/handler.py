"""Scheduled repair of jobs whose SageMaker events were lost (or never sent).

Every active job is compared with DescribeTrainingJob and moved exactly as the event would have
moved it (same code path). A PENDING job that SageMaker never heard of, older than the grace
period, is a launch that crashed before CreateTrainingJob: it is FAILED with a reason. A PENDING
job SageMaker does know (the Lambda died after CreateTrainingJob succeeded) is tracked.
"""

from __future__ import annotations

import warnings
from datetime import UTC, datetime, timedelta
from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.domain.ids import utc_now
from functions.domain.records import TrainingJobRecord
from functions.domain.statuses import JobStatus
from functions.observability import build_metrics, cold_start_metric_enabled
from functions.services.context import ServiceContext, service_context
from functions.services.job_events import apply_state
from functions.services.notifications import announce
from functions.services.trainings import audit

logger = Logger()
tracer = Tracer()
metrics = build_metrics()
warnings.filterwarnings("ignore", message="No application metrics to publish")
PENDING_GRACE = timedelta(minutes=5)


def _age(job: TrainingJobRecord, now: datetime) -> timedelta:
    created = datetime.strptime(job.created_at, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    return now - created


def reconcile_job(ctx: ServiceContext, job: TrainingJobRecord, now: datetime) -> str:
    """One job: 'repaired', 'failed-unlaunched' or 'unchanged'."""
    state = ctx.launcher.describe(job.sagemaker_job_name)
    if state is None:
        if job.status is JobStatus.PENDING and _age(job, now) > PENDING_GRACE:
            reason = (
                "the job was recorded but never reached SageMaker (the launch was interrupted); "
                "start it again"
            )
            moved = ctx.repository.transition_job(
                job.id, JobStatus.FAILED, at=utc_now(), cause="reconciler", fields={"failure_reason": reason}
            )
            if moved:
                cause = "reconciler: unknown to SageMaker"
                audit(job, job.status, JobStatus.FAILED, cause)
                announce(ctx.notifier, moved, job.status, JobStatus.FAILED, cause)
                return "failed-unlaunched"
        return "unchanged"
    return "repaired" if apply_state(ctx, state, cause="reconciler") else "unchanged"


def reconcile(ctx: ServiceContext, now: datetime | None = None) -> dict[str, int]:
    counts: dict[str, int] = {"repaired": 0, "failed-unlaunched": 0, "unchanged": 0, "errors": 0}
    for job in ctx.repository.active_jobs():
        try:
            counts[reconcile_job(ctx, job, now or datetime.now(UTC))] += 1
        except Exception:  # one bad job must not stop the others from being repaired
            logger.exception("could not reconcile job", extra={"job_id": job.id})
            counts["errors"] += 1
    return counts


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

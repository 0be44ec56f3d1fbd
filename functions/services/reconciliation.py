"""Repair of jobs whose SageMaker events were lost (or never sent).

Every active job is compared with DescribeTrainingJob and moved exactly as the event would have
moved it (same code path: ``apply_state``). A PENDING job that SageMaker never heard of, older
than the grace period, is a launch that crashed before CreateTrainingJob: it is FAILED with a
reason. A STOPPING job SageMaker never heard of (stopped while PENDING, after such a crash) is
STOPPED: no event will ever come for it, and only an end releases its active-job slot and its
model's and dataset's in-use counts. A PENDING job SageMaker does know (the Lambda died after
CreateTrainingJob succeeded) is tracked. Datasets waiting for a captions job are repaired the
same way (``functions.services.dataset_captions.reconcile_captions``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aws_lambda_powertools import Logger

from functions.domain.records import TrainingJobRecord
from functions.domain.statuses import JobStatus
from functions.services.context import ServiceContext
from functions.services.dataset_captions import reconcile_captions
from functions.services.job_events import apply_state
from functions.services.job_transitions import move_job

logger = Logger(child=True)
PENDING_GRACE = timedelta(minutes=5)
UNLAUNCHED_REASON = (
    "the job was recorded but never reached SageMaker (the launch was interrupted); start it again"
)


def _age(job: TrainingJobRecord, now: datetime) -> timedelta:
    created = datetime.strptime(job.created_at, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    return now - created


def _end_unlaunched(ctx: ServiceContext, job: TrainingJobRecord) -> str:
    """End a job SageMaker never heard of: PENDING fails, STOPPING (stopped before launch) stops."""
    if job.status is JobStatus.STOPPING:
        stopped = move_job(
            ctx, job, JobStatus.STOPPED, cause="reconciler", detail="reconciler: stopped before launch"
        )
        return "stopped-unlaunched" if stopped else "unchanged"
    failed = move_job(
        ctx,
        job,
        JobStatus.FAILED,
        cause="reconciler",
        detail="reconciler: unknown to SageMaker",
        fields={"failure_reason": UNLAUNCHED_REASON},
    )
    return "failed-unlaunched" if failed else "unchanged"


def reconcile_job(ctx: ServiceContext, job: TrainingJobRecord, now: datetime) -> str:
    """One job: 'repaired', 'failed-unlaunched', 'stopped-unlaunched' or 'unchanged'."""
    state = ctx.launcher.describe(job.sagemaker_job_name)
    if state is None:
        unlaunched = job.status in (JobStatus.PENDING, JobStatus.STOPPING)
        if unlaunched and _age(job, now) > PENDING_GRACE:
            return _end_unlaunched(ctx, job)
        return "unchanged"
    return "repaired" if apply_state(ctx, state, cause="reconciler") else "unchanged"


def reconcile(ctx: ServiceContext, now: datetime | None = None) -> dict[str, int]:
    """Every active job once; counts per outcome (one job's error never stops the others)."""
    counts = dict.fromkeys(("repaired", "failed-unlaunched", "stopped-unlaunched", "unchanged", "errors"), 0)
    for job in ctx.repository.active_jobs():
        try:
            counts[reconcile_job(ctx, job, now or datetime.now(UTC))] += 1
        except Exception:  # one bad job must not stop the others from being repaired
            logger.exception("could not reconcile job", extra={"job_id": job.id})
            counts["errors"] += 1
    return counts | reconcile_captions(ctx, now)

"""The one way a training job changes status: conditional write, then audit, then announce.

Every caller (launch, stop, SageMaker events, the reconciler) goes through ``move_job``, so the
rules hold everywhere: the write is conditional on the job's current status (and, for an end,
releases the owner's active-job slot and the in-use counts in the same transaction: see
``Repository.transition_job``); the audit line and the notification follow only a write that
happened, never one another caller won.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger

from functions.domain.ids import utc_now
from functions.domain.records import TrainingJobRecord
from functions.domain.statuses import JobStatus
from functions.services.context import ServiceContext
from functions.services.notifications import announce

logger = Logger(child=True)


def audit(job: TrainingJobRecord, old: JobStatus | None, new: JobStatus, cause: str) -> None:
    """Every state change, in structured form (job id, owner, from, to, cause)."""
    logger.info(
        "training job status changed",
        extra={
            "audit": True,
            "job_id": job.id,
            "owner": job.owner,
            "from_status": old.value if old else None,
            "to_status": new.value,
            "cause": cause,
        },
    )


def record_new_job(ctx: ServiceContext, job: TrainingJobRecord, *, max_active: int) -> None:
    """Store a PENDING job (taking one of the owner's active-job slots), then audit and announce it."""
    ctx.repository.create_job(job, max_active=max_active)
    audit(job, None, JobStatus.PENDING, "job recorded")
    announce(ctx.notifier, job, None, JobStatus.PENDING, "job recorded")


def move_job(
    ctx: ServiceContext,
    job: TrainingJobRecord,
    target: JobStatus,
    *,
    cause: str,
    detail: str | None = None,
    fields: dict[str, Any] | None = None,
) -> TrainingJobRecord | None:
    """Move ``job`` (as last read) to ``target``; returns the stored job, or None if not moved.

    ``cause`` goes into the job's history, ``detail`` (default: the cause) into the audit line and
    the notification. None means the job was no longer in a status that may move to ``target``:
    someone else moved it first, and their state stands.
    """
    moved = ctx.repository.transition_job(job.id, target, at=utc_now(), cause=cause, fields=fields)
    if moved is None:
        return None
    audit(job, job.status, target, detail or cause)
    announce(ctx.notifier, moved, job.status, target, detail or cause)
    return moved

"""Runs a background task by its kind (see ``functions/domain/background_tasks.py``).

Runners are imported on first use: the image work of a crop needs Pillow, which only the tasks
function bundles, and the API function never imports it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TypeVar

from pydantic import BaseModel

from functions.domain.background_tasks import TASK_DEADLINE_SECONDS, BackgroundTask, TaskKind
from functions.domain.catalog import ResourceStatus
from functions.domain.ids import utc_now
from functions.services.context import ServiceContext

Runner = Callable[[ServiceContext, BackgroundTask], None]
Waiting = TypeVar("Waiting", bound=BaseModel)
OVERDUE_REASON = "its background task did not finish in time (it stopped or timed out)"

# "module:function" of each kind's runner: ``runner(ctx, task)`` does the work and records the
# outcome on the task's record; it must tolerate running twice (asynchronous invocations retry).
RUNNERS: dict[TaskKind, str] = {
    TaskKind.DATASET_CROP: "functions.services.dataset_crop:run_crop_task",
    TaskKind.MODEL_IMPORT: "functions.services.model_import:run_import_task",
    TaskKind.DATASET_VALIDATION: "functions.services.dataset_validation:run_validation_task",
    TaskKind.DATASET_IMPORT: "functions.services.dataset_import:run_import_task",
}


def runner_for(kind: TaskKind) -> Runner:
    module, name = RUNNERS[kind].split(":")
    runner: Runner = getattr(importlib.import_module(module), name)
    return runner


def run_task(ctx: ServiceContext, task: BackgroundTask) -> None:
    runner_for(task.kind)(ctx, task)


def is_overdue(updated_at: str, now: str | None = None) -> bool:
    """Whether a record still waiting for its task has outlived any run of it (ISO-8601 UTC times)."""
    from datetime import datetime

    current = datetime.fromisoformat(now or utc_now())
    return (current - datetime.fromisoformat(updated_at)).total_seconds() > TASK_DEADLINE_SECONDS


WAITING_STATUSES = frozenset({ResourceStatus.PROCESSING, ResourceStatus.VALIDATING})


def mark_failed(
    ctx: ServiceContext,
    record: Waiting,
    reason: str,
    waiting: ResourceStatus = ResourceStatus.PROCESSING,
    **updates: object,
) -> Waiting | None:
    """The record marked failed with ``reason``, if it was still ``waiting`` for its task (else None:
    the task finished, or someone else failed or deleted the record, first)."""
    failed = record.model_copy(
        update={**updates, "status": ResourceStatus.FAILED, "failure_reason": reason, "updated_at": utc_now()}
    )
    return failed if ctx.repository.save(failed, expected_status=waiting.value) else None


INTERRUPTED_REASON = "its background task was interrupted (the service stopped while it ran); try again"


def fail_interrupted(ctx: ServiceContext, task: BackgroundTask, reason: str = INTERRUPTED_REASON) -> bool:
    """Fail the record a task was working on if it is still waiting for it (a task that will never
    finish, e.g. after a restart of the local runtime); whether it was failed."""
    from functions.domain.errors import NotFound
    from functions.domain.records import DatasetRecord, ModelRecord
    from functions.services.datasets import fail_waiting_dataset
    from functions.services.models import fail_waiting_model

    try:
        if task.kind is TaskKind.MODEL_IMPORT:
            model = ctx.repository.get(ModelRecord, task.record_id, task.owner)
            return (
                model.status is ResourceStatus.PROCESSING
                and fail_waiting_model(ctx, model, reason) is not None
            )
        dataset = ctx.repository.get(DatasetRecord, task.record_id, task.owner)
    except NotFound:
        return False
    return dataset.status in WAITING_STATUSES and fail_waiting_dataset(ctx, dataset, reason) is not None

"""``move_job``: the one status change (conditional write, then audit and announce, only on success)."""

from __future__ import annotations

from typing import Any, cast

import pytest

from functions.domain.catalog import FmType
from functions.domain.planning import TrainingPlan
from functions.domain.records import TrainingJobRecord
from functions.domain.statuses import JobStatus
from functions.domain.training_contract import Engine
from functions.services import job_transitions
from functions.services.context import ServiceContext
from functions.services.job_transitions import move_job


def _job(status: JobStatus) -> TrainingJobRecord:
    plan = TrainingPlan(
        images_per_epoch=1,
        steps_per_epoch=1,
        epochs=1,
        total_steps=1,
        estimated_seconds=1,
        estimated_cost_usd=0.0,
        estimated_spot_cost_usd=0.0,
        price_per_hour_usd=1.0,
    )
    return TrainingJobRecord(
        id="j1",
        owner="o1",
        name="n",
        fm_type=FmType.SD15,
        base_model_id="m",
        dataset_id="d",
        instance_type="ml.g5.xlarge",
        use_spot=False,
        max_runtime_seconds=3600,
        engine=Engine.KOHYA,
        config={},
        plan=plan,
        status=status,
        sagemaker_job_name="lora-j1",
        created_at="2026-01-01T00:00:00.000000Z",
        updated_at="2026-01-01T00:00:00.000000Z",
    )


class _Repository:
    def __init__(self, result: TrainingJobRecord | None) -> None:
        self.result = result
        self.calls: list[tuple[str, JobStatus, str, dict[str, Any] | None]] = []

    def transition_job(
        self, job_id: str, target: JobStatus, *, at: str, cause: str, fields: dict[str, Any] | None = None
    ) -> TrainingJobRecord | None:
        self.calls.append((job_id, target, cause, fields))
        return self.result


def _context(result: TrainingJobRecord | None) -> tuple[ServiceContext, _Repository]:
    repository = _Repository(result)
    ctx = type("Ctx", (), {"repository": repository, "notifier": object()})()
    return cast(ServiceContext, ctx), repository


@pytest.fixture
def seen(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, JobStatus | None, JobStatus, str]]:
    calls: list[tuple[str, JobStatus | None, JobStatus, str]] = []
    monkeypatch.setattr(
        job_transitions, "audit", lambda job, old, new, cause: calls.append(("audit", old, new, cause))
    )
    monkeypatch.setattr(
        job_transitions,
        "announce",
        lambda _n, job, old, new, cause: calls.append(("announce", old, new, cause)),
    )
    return calls


def test_a_move_that_wins_writes_audits_and_announces(seen: list[Any]) -> None:
    job = _job(JobStatus.TRAINING)
    moved = job.model_copy(update={"status": JobStatus.STOPPING})
    ctx, repository = _context(moved)
    assert move_job(ctx, job, JobStatus.STOPPING, cause="stop requested", detail="by owner") is moved
    assert repository.calls == [("j1", JobStatus.STOPPING, "stop requested", None)]
    assert seen == [
        ("audit", JobStatus.TRAINING, JobStatus.STOPPING, "by owner"),
        ("announce", JobStatus.TRAINING, JobStatus.STOPPING, "by owner"),
    ]


def test_a_move_that_loses_the_conditional_write_is_neither_audited_nor_announced(seen: list[Any]) -> None:
    ctx, repository = _context(None)
    job = _job(JobStatus.PENDING)
    assert move_job(ctx, job, JobStatus.FAILED, cause="refused", fields={"failure_reason": "x"}) is None
    assert repository.calls == [("j1", JobStatus.FAILED, "refused", {"failure_reason": "x"})]
    assert seen == []

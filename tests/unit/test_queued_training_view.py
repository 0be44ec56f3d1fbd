"""What ``loractl trainings get`` shows of a job waiting in the training queue (README, "Training
queue"): why it waits and its priority; Batch's name for the job once SageMaker runs it."""

from __future__ import annotations

from typing import Any

from loractl.views import training_sections


def lines(job: dict[str, Any]) -> dict[str, Any]:
    ((_, first), *_) = training_sections(job)
    return {label: value for label, value in first if value not in (None, "", [])}


def test_a_queued_job_shows_why_it_waits_and_its_priority() -> None:
    shown = lines({"id": "j", "status": "QUEUED", "queue_reason": "budget full", "priority": 7})
    assert shown["waiting"] == "budget full" and shown["priority"] == 7


def test_a_running_job_shows_the_name_sagemaker_runs_it_under_and_no_priority() -> None:
    shown = lines({"id": "j", "status": "TRAINING", "priority": 7, "training_job_name": "AWSBatchX1"})
    assert "priority" not in shown and "waiting" not in shown
    assert shown["sagemaker job"] == "AWSBatchX1"

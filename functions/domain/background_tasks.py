"""Work the API hands to the background (it outlasts API Gateway's 29-second limit).

A task names its kind, the owner and the record it works on; the record carries the task's
status for callers to poll (e.g. a dataset ``processing`` or ``validating`` →
``ready``/``invalid``/``failed``).
Tasks must be safe to run twice: an asynchronous Lambda invocation is retried on failure, so a
runner first checks the record is still waiting for it.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

# A task runs in a Lambda function with the maximum timeout (15 minutes); a record still waiting
# for its task after this long is failed by whoever reads it next (the task died or timed out).
TASK_TIMEOUT_SECONDS = 15 * 60
TASK_DEADLINE_SECONDS = TASK_TIMEOUT_SECONDS + 5 * 60


class TaskKind(StrEnum):
    DATASET_CROP = "dataset_crop"
    MODEL_IMPORT = "model_import"
    DATASET_VALIDATION = "dataset_validation"
    DATASET_IMPORT = "dataset_import"


class BackgroundTask(BaseModel):
    """The payload of one background task (the asynchronous invocation's event)."""

    model_config = ConfigDict(extra="forbid")

    kind: TaskKind
    owner: str = Field(min_length=1)
    record_id: str = Field(min_length=1)
    params: dict[str, Any] = Field(default_factory=dict)

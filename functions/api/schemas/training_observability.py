"""/trainings/{id}/logs and /metrics: a job's log lines and loss curve."""

from __future__ import annotations

from pydantic import BaseModel, Field

from functions.domain.training_contract import Engine


class TrainingLogLine(BaseModel):
    timestamp: str = Field(description="ISO-8601 UTC time CloudWatch Logs recorded the line")
    message: str


class TrainingLogPage(BaseModel):
    job_id: str
    lines: list[TrainingLogLine] = Field(description="oldest first")
    next_token: str = Field(
        description="newer lines; always given, so a follower polls it until the job ends and a page is empty"
    )
    previous_token: str | None = Field(default=None, description="older lines; null at the start of the log")


class TrainingMetricPoint(BaseModel):
    step: int
    epoch: int
    loss: float | None = None
    learning_rate: float | None = Field(default=None, description="null when the engine does not report it")
    elapsed_seconds: float | None = None


class TrainingMetrics(BaseModel):
    job_id: str
    engine: Engine | None = None
    total_steps: int | None = None
    stride: int = Field(description="steps between consecutive points (long jobs are evenly downsampled)")
    points: list[TrainingMetricPoint] = Field(description="by step; empty until the first step is recorded")
    updated_at: str | None = None

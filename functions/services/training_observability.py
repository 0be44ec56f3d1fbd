"""A training job's log (CloudWatch Logs) and loss curve (``metrics.json``), for its owner only.

Both read data the job produced outside the table: the log from the CloudWatch Logs streams
SageMaker writes, the curve from the small file the container keeps in its checkpoints folder
(synced to S3). Ownership is checked on the job record first, so another caller's job is a 404
and its log stream names never reach the adapter.
"""

from __future__ import annotations

from datetime import UTC, datetime

from aws_lambda_powertools import Logger
from pydantic import ValidationError

from functions.api.schemas.training_observability import (
    TrainingLogLine,
    TrainingLogPage,
    TrainingMetricPoint,
    TrainingMetrics,
)
from functions.domain.loss_curve import thin
from functions.domain.page_tokens import decode_token, encode_token
from functions.domain.records import TrainingJobRecord
from functions.domain.storage_layout import training_log_stream_prefix, training_metrics_key
from functions.domain.training_contract import MAX_METRIC_POINTS, MetricsReport
from functions.domain.training_logs import (
    LogCursor,
    LogRead,
    LogStart,
    check_log_limit,
    head_cursor,
    log_query,
)
from functions.services.context import ServiceContext

logger = Logger(child=True)
# A well-formed metrics.json is tens of kilobytes; anything far larger is not read whole.
MAX_METRICS_BYTES = 2 * 1024 * 1024


def _iso(timestamp_ms: int) -> str:
    return (
        datetime.fromtimestamp(timestamp_ms / 1000, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def read_training_log(
    ctx: ServiceContext,
    owner: str,
    job_id: str,
    *,
    limit: int,
    next_token: str | None,
    start: LogStart = LogStart.TAIL,
) -> TrainingLogPage:
    """One page of the job's log: the tail (or head) without a token, else the token's side of it."""
    check_log_limit(limit)
    job = ctx.repository.get(TrainingJobRecord, job_id, owner)
    prefix = training_log_stream_prefix(job.sagemaker_name)
    query = log_query(job_id)
    if next_token:
        cursor = LogCursor.from_token(decode_token(ctx.page_secret, owner, query, next_token), prefix)
        read = ctx.training_logs.read(prefix, cursor, limit)
    elif start is LogStart.HEAD:
        read = ctx.training_logs.read(prefix, head_cursor(), limit)
    else:
        read = ctx.training_logs.tail(prefix, limit)
    return _page(ctx, owner, job_id, query, read)


def _page(ctx: ServiceContext, owner: str, job_id: str, query: str, read: LogRead) -> TrainingLogPage:
    def token(cursor: LogCursor) -> str:
        return encode_token(ctx.page_secret, owner, query, cursor.to_token())

    return TrainingLogPage(
        job_id=job_id,
        lines=[
            TrainingLogLine(timestamp=_iso(line.timestamp_ms), message=line.message) for line in read.lines
        ],
        next_token=token(read.newer),
        previous_token=token(read.older) if read.older else None,
    )


def read_metrics_report(ctx: ServiceContext, job: TrainingJobRecord) -> MetricsReport | None:
    """The container's metrics file, or None when there is none yet (or it is unusable)."""
    key = training_metrics_key(job.owner, job.id)
    size = ctx.storage.object_size(key)
    if size is None:
        return None
    if size > MAX_METRICS_BYTES:
        logger.warning("metrics file too large to serve", extra={"job_id": job.id, "size_bytes": size})
        return None
    data = ctx.storage.read_json(key)
    if data is None:
        return None
    try:
        return MetricsReport.model_validate(data)
    except ValidationError:
        logger.warning("metrics file does not match the contract", extra={"job_id": job.id})
        return None


def read_training_metrics(ctx: ServiceContext, owner: str, job_id: str) -> TrainingMetrics:
    """The job's loss curve (empty before its first step), never more than MAX_METRIC_POINTS points."""
    job = ctx.repository.get(TrainingJobRecord, job_id, owner)
    report = read_metrics_report(ctx, job)
    if report is None:
        return TrainingMetrics(job_id=job_id, engine=job.engine, stride=1, points=[])
    points = thin(sorted(report.points, key=lambda p: p.step), MAX_METRIC_POINTS)
    return TrainingMetrics(
        job_id=job_id,
        engine=report.engine,
        total_steps=report.total_steps,
        stride=report.stride,
        points=[TrainingMetricPoint.model_validate(p.model_dump()) for p in points],
        updated_at=report.updated_at,
    )

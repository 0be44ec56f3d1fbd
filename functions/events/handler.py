"""Lambda entry point for EventBridge "SageMaker Training Job State Change" events and, on a
queued deployment, AWS Batch's "Batch Service Job State Change" events (the AWS Batch user guide,
"Service job state change events": source aws.batch, a detail that resembles DescribeServiceJob).

The rules only forward this stack's job-name prefix (in the job's name, or, for a training job AWS
Batch created under a name of its own, in its ``lora:job-name`` tag: functions.domain.batch_queue.
JOB_NAME_TAG); names that are not ours are ignored anyway.
Retries and a dead-letter queue are configured on the rule target: an exception here is retried.

The event is read with Powertools' parser (https://docs.aws.amazon.com/powertools/python/latest/
utilities/parser/, "Extending built-in models" and the standalone ``parse``): its ``EventBridgeModel``
envelope with the domain's ``TrainingJobStateDetail`` as the detail. ``parse`` rather than the
``event_parser`` decorator, because an event of another shape is ignored with a warning, not failed
(a failure would be retried, then dead-lettered, for nothing).
"""

from __future__ import annotations

import warnings
from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import ValidationError, parse
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.adapters.batch_launcher import state_of_service_job, training_job_arn
from functions.adapters.training_launcher import TrainingJobState
from functions.domain.batch_queue import SERVICE_JOB_EVENT_SOURCE, SERVICE_JOB_STATE_CHANGE, SERVICE_JOB_TYPE
from functions.domain.sagemaker_states import (
    STATE_CHANGE_DETAIL_TYPE,
    STATE_CHANGE_SOURCE,
    TrainingJobStateDetail,
)
from functions.domain.statuses import JobStatus
from functions.observability import build_metrics, cold_start_metric_enabled
from functions.services.context import service_context
from functions.services.job_events import apply_state

logger = Logger()
tracer = Tracer()
metrics = build_metrics()
warnings.filterwarnings("ignore", message="No application metrics to publish")


class TrainingJobStateChange(EventBridgeModel):
    """An EventBridge event whose detail is a training job's state (checked by ``state_from_event``)."""

    detail: TrainingJobStateDetail


def state_from_event(event: dict[str, Any]) -> TrainingJobState | None:
    """The job state a SageMaker training-job or Batch service-job state change carries; None
    for any other event."""
    if (
        event.get("source") == SERVICE_JOB_EVENT_SOURCE
        and event.get("detail-type") == SERVICE_JOB_STATE_CHANGE
    ):
        detail = event.get("detail") or {}
        if detail.get("serviceJobType") != SERVICE_JOB_TYPE or not isinstance(detail.get("jobName"), str):
            return None
        return state_of_service_job(detail)
    try:
        change = parse(event=event, model=TrainingJobStateChange)
    except ValidationError:
        return None
    if change.source != STATE_CHANGE_SOURCE or change.detail_type != STATE_CHANGE_DETAIL_TYPE:
        return None
    detail = change.detail
    # A job Batch created carries Batch's name; the service's own is in its tag (JOB_NAME_TAG).
    own_name = detail.service_job_name()
    return TrainingJobState(
        name=own_name or detail.name,
        status=detail.status,
        secondary_status=detail.secondary_status,
        failure_reason=detail.failure_reason,
        training_job_name=detail.name if own_name else None,
        found_by_tag=own_name is not None,
    )


def record_outcome(status: JobStatus | None) -> None:
    if status is JobStatus.FAILED:
        metrics.add_metric(name="TrainingJobsFailed", unit=MetricUnit.Count, value=1)
    elif status is JobStatus.COMPLETED:
        metrics.add_metric(name="TrainingJobsCompleted", unit=MetricUnit.Count, value=1)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=cold_start_metric_enabled())
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    state = state_from_event(event)
    if state is None:
        logger.warning("ignoring an event that is not a training or service job state change")
        return {"applied": None}
    ctx = service_context()
    if event.get("source") == SERVICE_JOB_EVENT_SOURCE and training_job_arn(event.get("detail") or {}):
        # SageMaker has the job: Batch's event maps its state coarsely and names the training job
        # only by ARN (lower-cased), so SageMaker's own view, with the name in its own spelling
        # (where the job's outputs and logs are), comes from DescribeServiceJob/DescribeTrainingJob.
        state = ctx.launcher.describe(state.name) or state
    new_status = apply_state(ctx, state, cause=f"event {event.get('id', '')}".strip())
    record_outcome(new_status)
    return {"applied": new_status.value if new_status else None}

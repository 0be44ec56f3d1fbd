"""Lambda entry point for EventBridge "SageMaker Training Job State Change" events and, on a
queued deployment, AWS Batch's "Batch Service Job State Change" events (the AWS Batch user guide,
"Service job state change events": source aws.batch, a detail that resembles DescribeServiceJob).

The rule only forwards this stack's job-name prefix; names that are not ours are ignored anyway.
Retries and a dead-letter queue are configured on the rule target: an exception here is retried.
"""

from __future__ import annotations

import warnings
from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.adapters.batch_launcher import state_of_service_job
from functions.adapters.training_launcher import TrainingJobState
from functions.domain.batch_queue import SERVICE_JOB_STATE_CHANGE, SERVICE_JOB_TYPE
from functions.domain.sagemaker_states import STATE_CHANGE_DETAIL_TYPE
from functions.domain.statuses import JobStatus
from functions.observability import build_metrics, cold_start_metric_enabled
from functions.services.context import service_context
from functions.services.job_events import apply_state

logger = Logger()
tracer = Tracer()
metrics = build_metrics()
warnings.filterwarnings("ignore", message="No application metrics to publish")


def state_from_event(event: dict[str, Any]) -> TrainingJobState | None:
    if event.get("source") == "aws.batch" and event.get("detail-type") == SERVICE_JOB_STATE_CHANGE:
        detail = event.get("detail") or {}
        if detail.get("serviceJobType") != SERVICE_JOB_TYPE or not isinstance(detail.get("jobName"), str):
            return None
        return state_of_service_job(detail)
    if event.get("source") != "aws.sagemaker" or event.get("detail-type") != STATE_CHANGE_DETAIL_TYPE:
        return None
    detail = event.get("detail") or {}
    name, status = detail.get("TrainingJobName"), detail.get("TrainingJobStatus")
    if not isinstance(name, str) or not isinstance(status, str):
        return None
    return TrainingJobState(
        name=name,
        status=status,
        secondary_status=detail.get("SecondaryStatus"),
        failure_reason=detail.get("FailureReason"),
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
    new_status = apply_state(service_context(), state, cause=f"event {event.get('id', '')}".strip())
    record_outcome(new_status)
    return {"applied": new_status.value if new_status else None}

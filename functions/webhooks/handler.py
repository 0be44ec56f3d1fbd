"""Lambda entry point that delivers queued webhooks (SQS event source, partial batch responses).

A message that fails (non-2xx, timeout, unreachable) is reported in ``batchItemFailures`` after
its visibility is set to the backoff for its attempt number, so SQS redelivers it later; after
``DEFAULTS.webhook_max_attempts`` receives the queue's redrive policy moves it to the DLQ (an
alarm watches it). A URL that became unacceptable is dropped at once (retrying cannot help).
Retries therefore survive the end of any Lambda invocation.

The batch loop and the ``batchItemFailures`` answer are Powertools' batch utility
(https://docs.aws.amazon.com/powertools/python/latest/utilities/batch/, "Processing messages from
SQS"): a record handler that raises marks its message failed. A batch whose every message failed
is answered the same way, not raised ("Working with full batch failures":
``raise_on_entire_batch_failure=False``): SQS redelivers each after the backoff set here either
way, and a raised error would count as a function error on the alarms.
"""

from __future__ import annotations

import warnings
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from functions.adapters.notifications import WebhookQueue
from functions.domain.notifications import WebhookDelivery, retry_delay_seconds
from functions.observability import build_metrics, cold_start_metric_enabled
from functions.services.notifications import WebhookRefused, deliver_webhook, webhook_signing_secret
from functions.settings import Settings

logger = Logger()
tracer = Tracer()
metrics = build_metrics()
warnings.filterwarnings("ignore", message="No application metrics to publish")


@cache
def _settings_and_secret() -> tuple[Settings, bytes]:
    settings = Settings.from_env()
    return settings, webhook_signing_secret(settings)


class DeliveryFailed(Exception):
    """A delivery that may succeed later: raised so the batch utility reports the message failed."""


processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


def handle_record(record: SQSRecord) -> None:
    """Deliver one message; return when done (delivered or permanently dropped), raise
    ``DeliveryFailed`` to have it redelivered after the backoff for its attempt."""
    settings, secret = _settings_and_secret()
    try:
        delivery = WebhookDelivery.model_validate_json(record.body)
    except ValidationError:
        logger.error("dropping a malformed webhook message", extra={"message_id": record.message_id})
        return
    log = {"delivery_id": delivery.body.delivery_id, "job_id": delivery.body.data.job_id}
    try:
        result = deliver_webhook(delivery, secret, allow_loopback_http=settings.webhook_allow_loopback_http)
    except WebhookRefused as refused:
        logger.warning("webhook URL refused at delivery; dropped", extra={**log, "reason": str(refused)})
        metrics.add_metric(name="WebhooksDropped", unit=MetricUnit.Count, value=1)
        return
    if result.delivered:
        logger.info("webhook delivered", extra={**log, "status": result.status})
        metrics.add_metric(name="WebhooksDelivered", unit=MetricUnit.Count, value=1)
        return
    attempt = int(record.attributes.approximate_receive_count)  # always in SQS event source records
    delay = retry_delay_seconds(attempt, settings.webhook_retry_base_seconds)
    logger.warning(
        "webhook delivery failed; will retry",
        extra={**log, "status": result.status, "error": result.error, "attempt": attempt, "retry_in": delay},
    )
    metrics.add_metric(name="WebhookAttemptsFailed", unit=MetricUnit.Count, value=1)
    if settings.webhook_queue_url and record.receipt_handle:
        try:
            WebhookQueue(settings.webhook_queue_url).retry_later(record.receipt_handle, delay)
        except Exception:  # then SQS retries after the queue's own visibility timeout
            logger.exception("could not set the retry delay", extra=log)
    raise DeliveryFailed(f"delivery {delivery.body.delivery_id} failed (attempt {attempt})")


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=cold_start_metric_enabled())
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(
        event=event, record_handler=handle_record, processor=processor, context=context
    )

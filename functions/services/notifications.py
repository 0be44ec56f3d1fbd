"""Tell the world a training job changed state: an event on the service's bus, and webhooks.

Called right after the conditional write that moved the job (the table is the source of
truth). Nothing here may undo or fail that write: a publish or enqueue failure is logged and
counted (``NotificationsFailed``), never raised. Semantics are at-least-once for what was handed
over (EventBridge targets and SQS retry; duplicates share ``event_key`` / ``delivery_id``), and a
failure between the write and the hand-over is visible in the log and the metric
(docs/notifications.md).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit

from functions.adapters.aws_clients import secret_value
from functions.adapters.notifications import (
    BusEntry,
    EventBusPublisher,
    HttpResult,
    PublishFailed,
    WebhookQueue,
    post_json,
    resolve_host,
)
from functions.domain.ids import utc_now
from functions.domain.kohya_params import FieldProblem
from functions.domain.notifications import (
    DELIVERY_ID_HEADER,
    EVENT_SOURCE,
    SIGNATURE_HEADER,
    WEBHOOK_TIMEOUT_SECONDS,
    JobStateChangeDetail,
    WebhookBody,
    WebhookDelivery,
    detail_types_for,
    signature_header,
    state_change_detail,
    wants_webhook,
    webhook_url_problems,
)
from functions.domain.records import TrainingJobRecord
from functions.domain.statuses import JobStatus
from functions.observability import build_metrics
from functions.settings import Settings

logger = Logger(child=True)


@dataclass(frozen=True)
class Notifier:
    """The deployment's notification outlets; either may be absent (then that outlet is off)."""

    bus: EventBusPublisher | None
    webhooks: WebhookQueue | None
    allow_loopback_http: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> Notifier:
        return cls(
            bus=EventBusPublisher(settings.event_bus_name) if settings.event_bus_name else None,
            webhooks=WebhookQueue(settings.webhook_queue_url) if settings.webhook_queue_url else None,
            allow_loopback_http=settings.webhook_allow_loopback_http,
        )


def webhook_signing_secret(settings: Settings) -> bytes:
    """The webhook HMAC key: given directly (local runtime, tests) or read from Secrets Manager."""
    if settings.webhook_signing_secret:
        return settings.webhook_signing_secret.encode()
    if settings.webhook_signing_secret_arn:
        return secret_value(settings.webhook_signing_secret_arn)
    raise RuntimeError("WEBHOOK_SIGNING_SECRET or WEBHOOK_SIGNING_SECRET_ARN must be set")


def webhook_problems(notifier: Notifier, url: str | None) -> list[FieldProblem]:
    """Why the service must not call ``url`` ([] when it may, or when there is none); checked
    before the job exists, with the request's other problems (one 400 lists them all)."""
    if url is None:
        return []
    if notifier.webhooks is None:
        return [FieldProblem("webhook_url", "is not supported: this deployment has no webhook queue")]
    return webhook_url_problems(url, allow_loopback_http=notifier.allow_loopback_http, resolve=resolve_host)


def _count_failure() -> None:
    """One ``NotificationsFailed`` (alarmed); the handler's metrics decorator flushes it."""
    build_metrics().add_metric(name="NotificationsFailed", unit=MetricUnit.Count, value=1)


def announce(
    notifier: Notifier, job: TrainingJobRecord, old: JobStatus | None, new: JobStatus, cause: str
) -> JobStateChangeDetail:
    """Publish one state change of ``job`` (the record as written) on the bus and, when it ended,
    queue its webhook. Never raises: the state change already happened and stands."""
    detail = state_change_detail(
        job_id=job.id,
        job_name=job.name,
        owner=job.owner,
        old_status=old,
        new_status=new,
        cause=cause,
        failure_reason=job.failure_reason,
        lora_model_id=job.output.lora_model_id if job.output else None,
        occurred_at=job.updated_at or utc_now(),
    )
    if notifier.bus is not None:
        _publish(notifier.bus, detail)
    if notifier.webhooks is not None and job.webhook_url and wants_webhook(new):
        _enqueue(notifier.webhooks, job.webhook_url, detail)
    return detail


def _publish(bus: EventBusPublisher, detail: JobStateChangeDetail) -> None:
    payload = detail.model_dump_json()
    entries = [
        BusEntry(detail_type=detail_type, source=EVENT_SOURCE, detail=payload)
        for detail_type in detail_types_for(detail)
    ]
    try:
        bus.publish(entries)
    except PublishFailed as error:
        logger.error(
            "could not publish a job state change; the job's state is unaffected",
            extra={"job_id": detail.job_id, "to_status": detail.new_status.value, "error": str(error)},
        )
        _count_failure()


def _enqueue(queue: WebhookQueue, url: str, detail: JobStateChangeDetail) -> None:
    delivery = WebhookDelivery(url=url, body=WebhookBody(delivery_id=detail.event_key, data=detail))
    try:
        queue.enqueue(delivery.model_dump_json())
    except Exception as error:  # any boto/network failure: log and count, never fail the transition
        logger.error(
            "could not queue a webhook delivery; the job's state is unaffected",
            extra={"job_id": detail.job_id, "to_status": detail.new_status.value, "error": str(error)},
        )
        _count_failure()


class WebhookRefused(Exception):
    """The URL is no longer acceptable (e.g. its host now resolves privately): do not retry."""


def deliver_webhook(
    delivery: WebhookDelivery, secret: bytes, *, allow_loopback_http: bool, now: int | None = None
) -> HttpResult:
    """Sign and POST one delivery. The URL is checked again, DNS included, right before sending
    (the answer may have changed since the job was created). Raises WebhookRefused when it fails."""
    problems = webhook_url_problems(
        delivery.url, allow_loopback_http=allow_loopback_http, resolve=resolve_host
    )
    if problems:
        raise WebhookRefused("; ".join(p.problem for p in problems))
    body = delivery.body.model_dump_json().encode()
    headers = {
        SIGNATURE_HEADER: signature_header(secret, int(time.time()) if now is None else now, body),
        DELIVERY_ID_HEADER: delivery.body.delivery_id,
        "User-Agent": "lora-on-aws-webhooks/1",
    }
    return post_json(delivery.url, body, headers, WEBHOOK_TIMEOUT_SECONDS)

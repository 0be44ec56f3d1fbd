"""Notifications of training job state changes: the event contract, webhook signing and URL rules.

Defined once here and used by the publisher (EventBridge), the webhook delivery, the docs and the
tests. Plain Python: resolving a host name is passed in as a function, so the rules are testable
without a network and the service decides where the resolver comes from.

Contract (see docs/notifications.md): every state change is an EventBridge event on the
service's own bus with ``source`` = ``EVENT_SOURCE`` and ``detail-type`` =
``JOB_STATE_CHANGE_DETAIL_TYPE``; a completed job also emits ``MODEL_READY_DETAIL_TYPE``. The
``detail`` is ``JobStateChangeDetail`` (``schema_version`` bumps on any incompatible change).
Webhooks receive ``WebhookBody`` on terminal states, signed as ``SIGNATURE_HEADER``.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from functions.domain.kohya_params import FieldProblem
from functions.domain.outbound_urls import (
    MAX_URL_LENGTH,
    Resolver,
    outbound_url_problems,
    resolved_address_problems,
)
from functions.domain.statuses import JobStatus, is_terminal

EVENT_SOURCE = "lora-training"
JOB_STATE_CHANGE_DETAIL_TYPE: Final = "LoRA Training Job State Change"
MODEL_READY_DETAIL_TYPE = "LoRA Model Ready"
SCHEMA_VERSION: Final = "1"

SIGNATURE_HEADER = "X-Lora-Signature"
DELIVERY_ID_HEADER = "X-Lora-Delivery"
SIGNATURE_TOLERANCE_SECONDS = 300  # a receiver rejects older signatures (replay protection)
WEBHOOK_URL_MAX_LENGTH = MAX_URL_LENGTH
WEBHOOK_FIELD = "webhook_url"
WEBHOOK_TIMEOUT_SECONDS = 10.0
MAX_RETRY_DELAY_SECONDS = 15 * 60


def retry_delay_seconds(attempt: int, base_seconds: int) -> int:
    """Exponential backoff after failed attempt number ``attempt`` (1-based), capped at 15 minutes."""
    return int(min(MAX_RETRY_DELAY_SECONDS, base_seconds * 2 ** max(0, attempt - 1)))


class JobStateChangeDetail(BaseModel):
    """The ``detail`` of both detail-types, and the ``data`` of a webhook body (schema v1)."""

    model_config = ConfigDict(extra="forbid")

    schema_version: Literal["1"] = SCHEMA_VERSION
    event_key: str = Field(description="job_id:new_status; the same for every duplicate of one change")
    job_id: str
    job_name: str
    owner: str = Field(description="the caller identity that owns the job")
    old_status: JobStatus | None = Field(description="null when the job was just recorded")
    new_status: JobStatus
    terminal: bool
    cause: str
    failure_reason: str | None = None
    lora_model_id: str | None = Field(default=None, description="set when new_status is COMPLETED")
    occurred_at: str = Field(description="ISO 8601 UTC time of the state change")


def state_change_detail(
    *,
    job_id: str,
    job_name: str,
    owner: str,
    old_status: JobStatus | None,
    new_status: JobStatus,
    cause: str,
    failure_reason: str | None,
    lora_model_id: str | None,
    occurred_at: str,
) -> JobStateChangeDetail:
    """The detail of one change; ``event_key`` lets consumers drop at-least-once duplicates."""
    return JobStateChangeDetail(
        event_key=f"{job_id}:{new_status.value}",
        job_id=job_id,
        job_name=job_name,
        owner=owner,
        old_status=old_status,
        new_status=new_status,
        terminal=is_terminal(new_status),
        cause=cause,
        failure_reason=failure_reason,
        lora_model_id=lora_model_id if new_status is JobStatus.COMPLETED else None,
        occurred_at=occurred_at,
    )


def detail_types_for(detail: JobStateChangeDetail) -> list[str]:
    """Every change is a state change; a completed job with a registered LoRA is also "model ready"."""
    types = [JOB_STATE_CHANGE_DETAIL_TYPE]
    if detail.new_status is JobStatus.COMPLETED and detail.lora_model_id:
        types.append(MODEL_READY_DETAIL_TYPE)
    return types


def wants_webhook(status: JobStatus) -> bool:
    """Webhooks fire on terminal states only (COMPLETED, FAILED, STOPPED)."""
    return is_terminal(status)


class WebhookBody(BaseModel):
    """What a webhook receiver gets (JSON): the event type and the same detail as on the bus."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["LoRA Training Job State Change"] = JOB_STATE_CHANGE_DETAIL_TYPE
    delivery_id: str = Field(description="the same on every retry of one delivery")
    data: JobStateChangeDetail


class WebhookDelivery(BaseModel):
    """A queued delivery (the SQS message body): where to send and what."""

    model_config = ConfigDict(extra="forbid")

    url: str
    body: WebhookBody


# ---------------------------------------------------------------- signing


def _mac(secret: bytes, timestamp: int, body: bytes) -> str:
    return hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()


def signature_header(secret: bytes, timestamp: int, body: bytes) -> str:
    """``t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`` (the scheme Stripe uses)."""
    return f"t={timestamp},v1={_mac(secret, timestamp, body)}"


def verify_signature(
    secret: bytes,
    header: str,
    body: bytes,
    *,
    now: int,
    tolerance_seconds: int = SIGNATURE_TOLERANCE_SECONDS,
) -> bool:
    """True when ``header`` signs exactly ``body`` with ``secret`` and is not older than the tolerance.

    Constant-time comparison; any ``v1`` entry may match (several appear while a secret rotates).
    """
    parts = [part.split("=", 1) for part in header.split(",") if "=" in part]
    timestamps = [value for key, value in parts if key.strip() == "t"]
    candidates = [value.strip() for key, value in parts if key.strip() == "v1"]
    if len(timestamps) != 1 or not timestamps[0].strip().isdigit() or not candidates:
        return False
    timestamp = int(timestamps[0].strip())
    if abs(now - timestamp) > tolerance_seconds:
        return False
    expected = _mac(secret, timestamp, body)
    return any(hmac.compare_digest(expected, candidate) for candidate in candidates)


# ---------------------------------------------------------------- webhook URLs


def webhook_url_problems(
    url: str, *, allow_loopback_http: bool, resolve: Resolver | None
) -> list[FieldProblem]:
    """Why ``url`` may not receive webhooks ([] when it may): the outbound URL rules, field
    ``webhook_url`` (see ``functions/domain/outbound_urls.py``). The delivery checks resolution
    again before each send."""
    return outbound_url_problems(url, WEBHOOK_FIELD, allow_loopback_http=allow_loopback_http, resolve=resolve)


def resolved_host_problems(host: str, *, allow_loopback: bool, resolve: Resolver) -> list[FieldProblem]:
    return resolved_address_problems(host, WEBHOOK_FIELD, allow_loopback=allow_loopback, resolve=resolve)

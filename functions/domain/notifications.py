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
import ipaddress
from collections.abc import Callable, Sequence
from typing import Final, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field

from functions.domain.kohya_params import FieldProblem
from functions.domain.statuses import JobStatus, is_terminal

EVENT_SOURCE = "lora-training"
JOB_STATE_CHANGE_DETAIL_TYPE: Final = "LoRA Training Job State Change"
MODEL_READY_DETAIL_TYPE = "LoRA Model Ready"
SCHEMA_VERSION: Final = "1"

SIGNATURE_HEADER = "X-Lora-Signature"
DELIVERY_ID_HEADER = "X-Lora-Delivery"
SIGNATURE_TOLERANCE_SECONDS = 300  # a receiver rejects older signatures (replay protection)
WEBHOOK_URL_MAX_LENGTH = 2048
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

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
Resolver = Callable[[str], Sequence[str]]  # host name -> IP addresses (raises OSError when unknown)


def _address_problem(address: str, allow_loopback: bool) -> str | None:
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address):  # IPv6 forms that carry an IPv4 address: judge that
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        ip = embedded or ip
    if ip.is_loopback and allow_loopback:
        return None
    if not ip.is_global or ip.is_multicast or ip.is_reserved or ip.is_unspecified:
        return f"must not point at a private, loopback or link-local address ({ip})"
    return None


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True


def webhook_url_problems(
    url: str, *, allow_loopback_http: bool, resolve: Resolver | None
) -> list[FieldProblem]:
    """Why ``url`` may not receive webhooks ([] when it may).

    https only (http only to loopback, when the deployment allows it: the local runtime); no
    credentials, no fragment, a host name or public IP literal; a host name must not resolve to a
    private, loopback or link-local address (pass ``resolve=None`` to skip DNS, e.g. in a unit
    test of the static rules). The delivery checks resolution again before each send.
    """
    field = "webhook_url"
    if len(url) > WEBHOOK_URL_MAX_LENGTH:
        return [FieldProblem(field, f"must be at most {WEBHOOK_URL_MAX_LENGTH} characters")]
    if any(ord(char) < 0x21 or ord(char) == 0x7F or char == "\\" for char in url):
        return [FieldProblem(field, "must not contain spaces, control characters or backslashes")]
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return [FieldProblem(field, "is not a valid URL")]
    host = (parts.hostname or "").rstrip(".")
    if parts.scheme not in ("https", "http") or not host:
        return [FieldProblem(field, "must be an https:// URL with a host")]
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        return [FieldProblem(field, "must not contain credentials")]
    if parts.fragment:
        return [FieldProblem(field, "must not contain a fragment")]
    if port == 0:
        return [FieldProblem(field, "must not use port 0")]
    loopback_allowed = allow_loopback_http and (host == "localhost" or _is_loopback_literal(host))
    if parts.scheme == "http" and not loopback_allowed:
        return [FieldProblem(field, "must use https")]
    if host == "localhost" or host.endswith(".localhost"):
        return [] if loopback_allowed else [FieldProblem(field, "must not point at localhost")]
    if _is_ip_literal(host):
        problem = _address_problem(host, allow_loopback_http)
        return [FieldProblem(field, problem)] if problem else []
    if "." not in host:
        return [FieldProblem(field, "must use a fully qualified host name")]
    if resolve is None:
        return []
    return resolved_host_problems(host, allow_loopback=allow_loopback_http, resolve=resolve)


def _is_loopback_literal(host: str) -> bool:
    return _is_ip_literal(host) and ipaddress.ip_address(host.split("%", 1)[0]).is_loopback


def resolved_host_problems(host: str, *, allow_loopback: bool, resolve: Resolver) -> list[FieldProblem]:
    """Every address the host resolves to must be public (a DNS answer cannot smuggle in 10.0.0.1)."""
    try:
        addresses = list(resolve(host))
    except OSError:
        return [FieldProblem("webhook_url", f"host {host} does not resolve")]
    if not addresses:
        return [FieldProblem("webhook_url", f"host {host} does not resolve")]
    for address in addresses:
        problem = _address_problem(address, allow_loopback)
        if problem:
            return [FieldProblem("webhook_url", f"host {host} resolves to a forbidden address: {problem}")]
    return []

"""Where notifications leave the service: the EventBridge bus, the webhook queue, the HTTP POST.

boto3 and the network only; what is sent is decided in functions.services.notifications.
"""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from functions.adapters.aws_clients import events_client, sqs_client


class PublishFailed(Exception):
    """EventBridge refused (some of) the entries, or could not be reached."""


@dataclass(frozen=True)
class BusEntry:
    detail_type: str
    source: str
    detail: str  # JSON
    resources: tuple[str, ...] = ()


class EventBusPublisher:
    """PutEvents onto one bus (the service's own); raises PublishFailed when any entry fails."""

    def __init__(self, bus_name: str) -> None:
        self.bus_name = bus_name

    def publish(self, entries: Sequence[BusEntry]) -> None:
        try:
            response = events_client().put_events(
                Entries=[
                    {
                        "EventBusName": self.bus_name,
                        "Source": entry.source,
                        "DetailType": entry.detail_type,
                        "Detail": entry.detail,
                        "Resources": list(entry.resources),
                    }
                    for entry in entries
                ]
            )
        except Exception as error:  # botocore errors of any kind: the caller logs and counts them
            raise PublishFailed(str(error)) from error
        if response.get("FailedEntryCount", 0):
            failures = [e for e in response.get("Entries", []) if e.get("ErrorCode")]
            raise PublishFailed(f"{len(failures)} entries refused: {failures}")


class WebhookQueue:
    """Deliveries are SQS messages so that retries outlive the Lambda that enqueued them."""

    def __init__(self, queue_url: str) -> None:
        self.queue_url = queue_url

    def enqueue(self, message: str) -> None:
        sqs_client().send_message(QueueUrl=self.queue_url, MessageBody=message)

    def retry_later(self, receipt_handle: str, delay_seconds: int) -> None:
        """Keep a failed message invisible for ``delay_seconds`` (the backoff), then SQS redelivers it."""
        sqs_client().change_message_visibility(
            QueueUrl=self.queue_url, ReceiptHandle=receipt_handle, VisibilityTimeout=delay_seconds
        )


@dataclass(frozen=True)
class HttpResult:
    status: int  # 0 when no response came back (connection refused, timeout, DNS)
    error: str = ""

    @property
    def delivered(self) -> bool:
        return 200 <= self.status < 300


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect could lead to a private address the URL checks never saw: treat it as failure."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


def post_json(url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> HttpResult:
    """POST ``body``; never raises for HTTP or network failures (the result says what happened)."""
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json", **headers}
    )
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return HttpResult(status=int(response.status))
    except urllib.error.HTTPError as error:
        return HttpResult(status=int(error.code), error=f"HTTP {error.code}")
    except (urllib.error.URLError, OSError, ValueError) as error:
        return HttpResult(status=0, error=str(error))


def resolve_host(host: str) -> list[str]:
    """Every address a host name resolves to (raises OSError when it does not)."""
    return sorted({str(info[4][0]) for info in socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)})

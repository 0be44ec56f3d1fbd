"""The AWS emulator of the local runtime: moto 5's server on loopback, holding the service's
DynamoDB tables and S3 bucket, created from the same definitions the CDK stack uses.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config
from moto.server import ThreadedMotoServer

from functions.adapters.table_schema import (
    IDEMPOTENCY_TTL_ATTRIBUTE,
    create_idempotency_table_kwargs,
    create_table_kwargs,
)

FAKE_ACCESS_KEY_ID = "local"
FAKE_SECRET_ACCESS_KEY = "local-secret"  # moto accepts any credentials; botocore needs some to sign
LOOPBACK = "127.0.0.1"

# Browsers (and any web UI on another local port) upload straight to presigned URLs.
BUCKET_CORS = {
    "CORSRules": [
        {
            "AllowedMethods": ["GET", "PUT", "POST", "HEAD"],
            "AllowedOrigins": ["*"],
            "AllowedHeaders": ["*"],
            "ExposeHeaders": ["ETag"],
            "MaxAgeSeconds": 3000,
        }
    ]
}


_DYNAMODB_LOCK = threading.Lock()


def serialise_dynamodb_requests() -> None:
    """Make moto run one DynamoDB request at a time, as DynamoDB's own guarantee requires.

    DynamoDB applies each write, condition and transaction atomically (a conditional ``ADD`` or a
    TransactWriteItems is checked and applied as one step). moto's server handles requests on
    parallel threads with no lock: two transactions can both pass their conditions, and a
    cancelled one restores a copy of the whole table taken before it ran, undoing writes made
    meanwhile. Without this, the emulator would break the very atomicity the per-owner caps rely
    on (functions/adapters/repository.py). Handlers still run in parallel; only each DynamoDB
    call is indivisible, exactly as in AWS. Idempotent.
    """
    from moto.dynamodb.responses import DynamoHandler

    if getattr(DynamoHandler, "_serialised", False):
        return
    original = DynamoHandler.call_action

    def call_action(self: DynamoHandler) -> Any:
        with _DYNAMODB_LOCK:
            return original(self)

    DynamoHandler.call_action = call_action  # type: ignore[method-assign]
    DynamoHandler._serialised = True  # type: ignore[attr-defined]


@dataclass(frozen=True)
class ResourceNames:
    """The emulated resources; the handlers learn them through the ``functions.settings`` env vars."""

    table: str = "lora-local"
    idempotency_table: str = "lora-local-idempotency"
    bucket: str = "lora-local-artifacts"
    event_bus: str = "lora-local-events"
    webhook_queue: str = "lora-local-webhooks"


class AwsEmulator:
    """moto's threaded server on a loopback port (0 picks a free one)."""

    def __init__(self, region: str, port: int = 0) -> None:
        self.region = region
        self._server = ThreadedMotoServer(ip_address=LOOPBACK, port=port, verbose=False)
        self._started = False

    def start(self) -> None:
        # moto's werkzeug server logs every request; the runtime's own log says what matters.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        serialise_dynamodb_requests()
        self._server.start()
        self._started = True

    def stop(self) -> None:
        if self._started:
            self._server.stop()
            self._started = False

    @property
    def endpoint_url(self) -> str:
        host, port = self._server.get_host_and_port()
        return f"http://{host}:{port}"

    def client(self, service: str) -> Any:
        """A boto3 client pointed at the emulator (path-style S3: the endpoint is an IP address)."""
        return boto3.client(
            service,  # type: ignore[call-overload]
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id=FAKE_ACCESS_KEY_ID,
            aws_secret_access_key=FAKE_SECRET_ACCESS_KEY,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3, "mode": "standard"}),
        )

    def create_resources(self, names: ResourceNames) -> None:
        """Create the tables and the bucket (with CORS) unless they exist already."""
        dynamodb = self.client("dynamodb")
        existing = set(dynamodb.list_tables()["TableNames"])
        for kwargs in (
            create_table_kwargs(names.table),
            create_idempotency_table_kwargs(names.idempotency_table),
        ):
            if kwargs["TableName"] not in existing:
                dynamodb.create_table(**kwargs)
        dynamodb.update_time_to_live(
            TableName=names.idempotency_table,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": IDEMPOTENCY_TTL_ATTRIBUTE},
        )
        s3 = self.client("s3")
        if names.bucket not in {bucket["Name"] for bucket in s3.list_buckets().get("Buckets", [])}:
            create: dict[str, Any] = {"Bucket": names.bucket}
            if self.region != "us-east-1":
                create["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
            s3.create_bucket(**create)
        s3.put_bucket_cors(Bucket=names.bucket, CORSConfiguration=BUCKET_CORS)
        self.create_notification_resources(names)

    def create_import_token_key(self) -> str:
        """The KMS key that seals gated imports' access tokens (functions/adapters/token_sealer.py);
        a new one per start, like the emulator's memory: a token sealed before a restart no longer
        opens, and its import fails with that reason."""
        key = self.client("kms").create_key(Description="lora-local import tokens")
        return str(key["KeyMetadata"]["Arn"])

    def create_notification_resources(self, names: ResourceNames) -> tuple[str, str]:
        """The service's event bus and the webhook delivery queue; returns the queue's URL and ARN."""
        events = self.client("events")
        if names.event_bus not in {bus["Name"] for bus in events.list_event_buses()["EventBuses"]}:
            events.create_event_bus(Name=names.event_bus)
        sqs = self.client("sqs")
        url = sqs.create_queue(QueueName=names.webhook_queue)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        return str(url), str(arn)

"""Notifications: the service's own EventBridge bus, the webhook queue (+ DLQ) and signing secret.

Job state changes are put on the bus by the API, events and reconciler functions (PutEvents on
this bus only); users subscribe with their own rules (docs/notifications.md). Webhook deliveries
are SQS messages consumed by the delivery function: a failed delivery returns to the queue with
a backoff and, after ``DEFAULTS.webhook_max_attempts`` receives, moves to the dead-letter queue,
which the monitoring construct alarms on. Who may publish, consume and read the secret is
granted with each function's environment (``constructs/functions.py``).
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_events as events
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from functions.settings import DEFAULTS
from infrastructure.constructs.queues import dead_letter_queue
from infrastructure.nag import acknowledge

# SQS wants the visibility timeout to be at least six times the consumer's timeout.
DELIVERY_TIMEOUT_SECONDS = 30
QUEUE_VISIBILITY = Duration.seconds(6 * DELIVERY_TIMEOUT_SECONDS)


class ServiceNotifications(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, removal_policy: RemovalPolicy) -> None:
        super().__init__(scope, construct_id)
        self.bus = events.EventBus(self, "Bus", description="LoRA training job state changes (lora-training)")
        self.webhook_dead_letters = dead_letter_queue(self, "WebhookDeadLetters", "webhook deliveries")
        self.webhook_queue = sqs.Queue(
            self,
            "WebhookDeliveries",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            visibility_timeout=QUEUE_VISIBILITY,
            retention_period=Duration.days(4),
            dead_letter_queue=sqs.DeadLetterQueue(
                queue=self.webhook_dead_letters, max_receive_count=DEFAULTS.webhook_max_attempts
            ),
        )
        self.signing_secret = secretsmanager.Secret(
            self,
            "WebhookSigningSecret",
            description="HMAC-SHA256 key of webhook signatures (X-Lora-Signature); receivers verify with it",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                exclude_punctuation=True, password_length=64
            ),
            # Receivers hold a copy: kept with the data when the stack retains its data.
            removal_policy=removal_policy,
        )
        acknowledge(
            self.signing_secret,
            "SMG4",
            "Receivers hold a copy of this key: rotation is a coordinated step (docs/notifications.md).",
        )

"""Dead-letter queues: where the service parks what failed every retry (each has an alarm)."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infrastructure.nag import acknowledge

DEAD_LETTER_RETENTION = Duration.days(14)  # SQS's maximum: time to look and redrive


def dead_letter_queue(scope: Construct, construct_id: str, holds: str) -> sqs.Queue:
    """An encrypted, TLS-only queue for ``holds`` (what fails every retry ends up here)."""
    queue = sqs.Queue(
        scope,
        construct_id,
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
        retention_period=DEAD_LETTER_RETENTION,
    )
    acknowledge(queue, "SQS3", f"This queue is itself the dead-letter queue of {holds}.")
    return queue

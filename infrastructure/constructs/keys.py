"""Customer-managed KMS keys for data in flight only (nothing at rest depends on them)."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_kms as kms
from constructs import Construct


def in_flight_key(scope: Construct, construct_id: str, description: str) -> kms.Key:
    """A rotating key that protects only messages in flight (alarm notifications, an import's
    access token): nothing to keep, so it is deleted with the stack, after KMS's shortest
    waiting period (7 days), in both removal modes."""
    return kms.Key(
        scope,
        construct_id,
        description=description,
        enable_key_rotation=True,
        removal_policy=RemovalPolicy.DESTROY,
        pending_window=Duration.days(7),
    )

"""DynamoDB: the records table (keys from functions/adapters/table_schema.py) and the idempotency table."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from constructs import Construct

from functions.adapters.table_schema import (
    GLOBAL_INDEXES,
    IDEMPOTENCY_PARTITION_KEY,
    IDEMPOTENCY_TTL_ATTRIBUTE,
    PARTITION_KEY,
    SORT_KEY,
)

_STRING = dynamodb.AttributeType.STRING


class ServiceState(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, removal_policy: RemovalPolicy) -> None:
        super().__init__(scope, construct_id)
        # AWS-owned keys would not show in the account; AWS-managed (aws/dynamodb) is auditable in
        # CloudTrail at no key cost. A customer-managed key adds $1/month and key policy upkeep.
        self.table = dynamodb.Table(
            self,
            "Records",
            partition_key=dynamodb.Attribute(name=PARTITION_KEY, type=_STRING),
            sort_key=dynamodb.Attribute(name=SORT_KEY, type=_STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            # Protected exactly when retained: under "destroy" the delete must be able to succeed.
            deletion_protection=removal_policy == RemovalPolicy.RETAIN,
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            removal_policy=removal_policy,
        )
        for index in GLOBAL_INDEXES:
            self.table.add_global_secondary_index(
                index_name=index.name,
                partition_key=dynamodb.Attribute(name=index.partition_key, type=_STRING),
                sort_key=dynamodb.Attribute(name=index.sort_key, type=_STRING),
                projection_type=dynamodb.ProjectionType.ALL,
            )
        self.idempotency_table = dynamodb.Table(
            self,
            "Idempotency",
            partition_key=dynamodb.Attribute(name=IDEMPOTENCY_PARTITION_KEY, type=_STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            time_to_live_attribute=IDEMPOTENCY_TTL_ATTRIBUTE,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            # Idempotency records live 24 h: nothing worth keeping once the stack is gone, in either
            # mode. Deletion protection would make CloudFormation's delete of this table fail, and
            # with it `cdk destroy` (tests/infrastructure/test_removal_policies.py).
            deletion_protection=False,
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            removal_policy=RemovalPolicy.DESTROY,
        )

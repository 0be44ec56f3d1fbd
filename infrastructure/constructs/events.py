"""EventBridge: SageMaker state changes of this stack's jobs → events function (retries + DLQ),
and the reconciler's schedule."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from functions.domain.sagemaker_states import STATE_CHANGE_DETAIL_TYPE
from infrastructure.nag import acknowledge

RECONCILE_EVERY = Duration.minutes(10)


class TrainingEvents(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        job_name_prefix: str,
        events_function: lambda_.IFunction,
        reconciler: lambda_.IFunction,
    ) -> None:
        super().__init__(scope, construct_id)
        self.dead_letters = sqs.Queue(
            self,
            "DeadLetters",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(14),
        )
        acknowledge(
            self.dead_letters,
            "SQS3",
            "This queue is itself the dead-letter queue of the state-change rule.",
        )
        self.rule = events.Rule(
            self,
            "TrainingStateChanges",
            description="SageMaker training jobs of this stack only (job-name prefix)",
            event_pattern=events.EventPattern(
                source=["aws.sagemaker"],
                detail_type=[STATE_CHANGE_DETAIL_TYPE],
                detail={"TrainingJobName": events.Match.prefix(f"{job_name_prefix}-")},
            ),
            targets=[
                targets.LambdaFunction(
                    events_function,
                    dead_letter_queue=self.dead_letters,
                    retry_attempts=8,
                    max_event_age=Duration.hours(6),
                )
            ],
        )
        self.schedule = events.Rule(
            self,
            "Reconcile",
            description="Repair jobs whose state-change events were lost",
            schedule=events.Schedule.rate(RECONCILE_EVERY),
            targets=[targets.LambdaFunction(reconciler, retry_attempts=0)],
        )

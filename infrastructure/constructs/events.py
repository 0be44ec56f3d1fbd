"""EventBridge: SageMaker state changes of this stack's jobs → events function (retries + DLQ),
and the reconciler's schedule."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from functions.domain.batch_queue import JOB_NAME_TAG, SERVICE_JOB_EVENT_SOURCE, SERVICE_JOB_STATE_CHANGE
from functions.domain.sagemaker_states import STATE_CHANGE_DETAIL_TYPE, STATE_CHANGE_SOURCE
from infrastructure.constructs.queues import dead_letter_queue

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
        job_queue_arn: str | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.dead_letters = dead_letter_queue(self, "DeadLetters", "the state-change rule")
        # Every state-change rule hands its events to the events function the same way.
        deliver = targets.LambdaFunction(
            events_function,
            dead_letter_queue=self.dead_letters,
            retry_attempts=8,
            max_event_age=Duration.hours(6),
        )
        self.rule = events.Rule(
            self,
            "TrainingStateChanges",
            description="SageMaker training jobs of this stack only (job-name prefix)",
            event_pattern=events.EventPattern(
                source=[STATE_CHANGE_SOURCE],
                detail_type=[STATE_CHANGE_DETAIL_TYPE],
                detail={"TrainingJobName": events.Match.prefix(f"{job_name_prefix}-")},
            ),
            targets=[deliver],
        )
        if job_queue_arn is not None:
            # Batch creates each training job under a name of its own (AWSBatch...), so the rule
            # above never sees them; the service's name travels in their tag instead
            # (functions.domain.batch_queue.JOB_NAME_TAG; SageMaker's events carry ``detail.Tags``).
            self.renamed_rule = events.Rule(
                self,
                "QueuedTrainingJobStateChanges",
                description="SageMaker training jobs AWS Batch created for this stack (job-name tag prefix)",
                event_pattern=events.EventPattern(
                    source=[STATE_CHANGE_SOURCE],
                    detail_type=[STATE_CHANGE_DETAIL_TYPE],
                    detail={"Tags": {JOB_NAME_TAG: events.Match.prefix(f"{job_name_prefix}-")}},
                ),
                targets=[deliver],
            )
            # Batch's service-job events of this stack's queue: queued, reasons, ended in the queue.
            self.queue_rule = events.Rule(
                self,
                "QueuedTrainingStateChanges",
                description="AWS Batch service jobs of this stack's training queue",
                event_pattern=events.EventPattern(
                    source=[SERVICE_JOB_EVENT_SOURCE],
                    detail_type=[SERVICE_JOB_STATE_CHANGE],
                    detail={"jobQueue": [job_queue_arn]},
                ),
                targets=[deliver],
            )
        self.schedule = events.Rule(
            self,
            "Reconcile",
            description="Repair jobs whose state-change events were lost",
            schedule=events.Schedule.rate(RECONCILE_EVERY),
            targets=[targets.LambdaFunction(reconciler, retry_attempts=0)],
        )

"""The service's one stack: state, storage, training, functions, API, events, monitoring."""

from __future__ import annotations

import re

from aws_cdk import CfnOutput, RemovalPolicy, Stack
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from functions.domain.ids import ID_LENGTH
from functions.domain.storage_layout import MAX_JOB_NAME_LENGTH
from infrastructure.config import DeploymentConfig
from infrastructure.constructs.api import ServiceApi
from infrastructure.constructs.events import TrainingEvents
from infrastructure.constructs.functions import SERVICE_NAME, ServiceFunctions, ServiceResources
from infrastructure.constructs.monitoring import ServiceMonitoring
from infrastructure.constructs.notifications import ServiceNotifications
from infrastructure.constructs.state import ServiceState
from infrastructure.constructs.storage import ServiceStorage
from infrastructure.constructs.training import TrainingEnvironment
from infrastructure.constructs.training_queue import TrainingQueue
from infrastructure.nag import acknowledge

MAX_PREFIX_LENGTH = MAX_JOB_NAME_LENGTH - ID_LENGTH - 1


def job_name_prefix(stack: Stack, configured: str | None) -> str:
    """Training-job name prefix: configured, or derived from the stack so two installs can coexist."""
    # Stack names are unique per account and region, so a prefix derived from one is too.
    prefix = (
        configured or re.sub(r"[^a-zA-Z0-9-]", "-", stack.stack_name).strip("-").lower()[:MAX_PREFIX_LENGTH]
    )
    if not re.fullmatch(r"[a-zA-Z0-9](-*[a-zA-Z0-9])*", prefix) or len(prefix) > MAX_PREFIX_LENGTH:
        raise ValueError(
            f"jobNamePrefix {prefix!r}: letters, digits and '-', at most {MAX_PREFIX_LENGTH} characters"
        )
    return prefix


_R = logs.RetentionDays
_RETENTION = {
    1: _R.ONE_DAY, 3: _R.THREE_DAYS, 5: _R.FIVE_DAYS, 7: _R.ONE_WEEK, 14: _R.TWO_WEEKS, 30: _R.ONE_MONTH,
    60: _R.TWO_MONTHS, 90: _R.THREE_MONTHS, 180: _R.SIX_MONTHS, 365: _R.ONE_YEAR, 731: _R.TWO_YEARS,
    1827: _R.FIVE_YEARS,
}  # fmt: skip


def log_retention(days: int) -> logs.RetentionDays:
    if days not in _RETENTION:
        raise ValueError(f"logRetentionDays must be one of {sorted(_RETENTION)}")
    return _RETENTION[days]


class LoraTrainingStack(Stack):
    def __init__(
        self, scope: Construct, construct_id: str, *, config: DeploymentConfig, **kwargs: object
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        removal = RemovalPolicy.RETAIN if config.retain_data else RemovalPolicy.DESTROY
        retention = log_retention(config.log_retention_days)
        prefix = job_name_prefix(self, config.job_name_prefix)

        state = ServiceState(self, "State", removal_policy=removal)
        storage = ServiceStorage(self, "Storage", removal_policy=removal)
        training = TrainingEnvironment(
            self,
            "Training",
            bucket=storage.bucket,
            subnet_ids=config.training_subnet_ids,
            security_group_ids=config.training_security_group_ids,
        )
        page_token_secret = secretsmanager.Secret(
            self,
            "PageTokenSecret",
            description="HMAC key of the API's pagination tokens",
            # Only signs short-lived cursors: nothing to keep once the stack is gone, in either mode.
            removal_policy=RemovalPolicy.DESTROY,
            generate_secret_string=secretsmanager.SecretStringGenerator(
                exclude_punctuation=True, password_length=64
            ),
        )
        acknowledge(
            page_token_secret,
            "SMG4",
            "Only signs short-lived pagination cursors; rotating it would merely invalidate open cursors.",
        )
        notifications = ServiceNotifications(self, "Notifications", removal_policy=removal)
        queue = (
            TrainingQueue(
                self,
                "TrainingQueue",
                gpu_budget_instances=config.gpu_budget_instances,
                max_queue_wait_seconds=config.max_queue_wait_seconds,
            )
            if config.training_queue
            else None
        )
        functions = ServiceFunctions(
            self,
            "Functions",
            resources=ServiceResources(
                table=state.table,
                idempotency_table=state.idempotency_table,
                bucket=storage.bucket,
                training=training,
                page_token_secret=page_token_secret,
                notifications=notifications,
                job_name_prefix=prefix,
                training_queue=queue,
            ),
            config=config,
            log_retention=retention,
            removal_policy=removal,
        )
        api = ServiceApi(
            self, "Http", handler=functions.api_alias, log_retention=retention, removal_policy=removal
        )
        events = TrainingEvents(
            self,
            "Events",
            job_name_prefix=prefix,
            events_function=functions.events,
            reconciler=functions.reconciler,
            job_queue_arn=queue.queue_arn if queue else None,
        )
        ServiceMonitoring(
            self,
            "Monitoring",
            api=api.api,
            functions={
                "Api": functions.api,
                "Events": functions.events,
                "Reconciler": functions.reconciler,
                "Webhooks": functions.webhooks,
                "Tasks": functions.tasks,
            },
            dead_letters=events.dead_letters,
            webhook_dead_letters=notifications.webhook_dead_letters,
            task_dead_letters=functions.tasks_dead_letters,
            service_name=SERVICE_NAME,
            alarm_email=config.alarm_email,
        )
        CfnOutput(
            self, "ApiUrl", value=api.api.url, description="Base URL of the REST API (SigV4, execute-api)"
        )
        CfnOutput(self, "BucketName", value=storage.bucket.bucket_name)
        CfnOutput(self, "TrainingImageUri", value=training.image.image_uri)
        CfnOutput(self, "TableName", value=state.table.table_name)
        CfnOutput(self, "JobNamePrefix", value=prefix)
        CfnOutput(
            self,
            "EventBusName",
            value=notifications.bus.event_bus_name,
            description="Job state change events",
        )
        CfnOutput(
            self,
            "WebhookSigningSecretArn",
            value=notifications.signing_secret.secret_arn,
            description="Key receivers verify X-Lora-Signature with",
        )

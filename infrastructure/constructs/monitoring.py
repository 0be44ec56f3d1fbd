"""Alarms (API 5xx, handler errors, dead letters, failed trainings) on one SNS topic, and a dashboard."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from functions.settings import METRICS_NAMESPACE
from infrastructure.constructs.keys import in_flight_key


class ServiceMonitoring(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        api: apigw.RestApi,
        functions: dict[str, lambda_.IFunction],
        dead_letters: sqs.IQueue,
        webhook_dead_letters: sqs.IQueue | None = None,
        task_dead_letters: sqs.IQueue | None = None,
        service_name: str,
        alarm_email: str | None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.topic = sns.Topic(
            self,
            "Alarms",
            display_name="LoRA training service alarms",
            master_key=self._alarm_topic_key(),
            enforce_ssl=True,
        )
        if alarm_email:
            self.topic.add_subscription(subscriptions.EmailSubscription(alarm_email))
        failed_trainings, completed_trainings = (
            cloudwatch.Metric(
                namespace=METRICS_NAMESPACE,
                metric_name=name,
                dimensions_map={"service": service_name},
                statistic="Sum",
                period=Duration.minutes(5),
            )
            for name in ("TrainingJobsFailed", "TrainingJobsCompleted")
        )
        self.alarms = [
            self._alarm("Api5xx", api.metric_server_error(period=Duration.minutes(5), statistic="Sum"), 1),
            *(
                self._alarm(f"{name}Errors", function.metric_errors(period=Duration.minutes(5)), 1)
                for name, function in functions.items()
            ),
            self._alarm(
                "DeadLetters",
                dead_letters.metric_approximate_number_of_messages_visible(period=Duration.minutes(5)),
                1,
            ),
            self._alarm("TrainingsFailed", failed_trainings, 1),
            # A state change that could not be put on the bus or queued for its webhook.
            self._alarm("NotificationsFailed", self._service_metric("NotificationsFailed", service_name), 1),
        ]
        if webhook_dead_letters is not None:  # webhooks that failed every attempt
            self.alarms.append(
                self._alarm(
                    "WebhookDeadLetters",
                    webhook_dead_letters.metric_approximate_number_of_messages_visible(
                        period=Duration.minutes(5)
                    ),
                    1,
                )
            )
        if task_dead_letters is not None:  # background tasks that failed every attempt
            self.alarms.append(
                self._alarm(
                    "TaskDeadLetters",
                    task_dead_letters.metric_approximate_number_of_messages_visible(
                        period=Duration.minutes(5)
                    ),
                    1,
                )
            )
        self.dashboard = cloudwatch.Dashboard(self, "Dashboard")
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="API requests and errors",
                left=[
                    api.metric_count(period=Duration.minutes(5)),
                    api.metric_client_error(),
                    api.metric_server_error(),
                ],
                right=[api.metric_latency(statistic="p99")],
            ),
            cloudwatch.GraphWidget(title="Trainings", left=[completed_trainings, failed_trainings]),
            cloudwatch.GraphWidget(
                title="Handler errors and duration",
                left=[f.metric_errors() for f in functions.values()],
                right=[f.metric_duration(statistic="p99") for f in functions.values()],
            ),
            cloudwatch.AlarmStatusWidget(title="Alarms", alarms=self.alarms),
        )

    def _alarm_topic_key(self) -> kms.Key:
        """A customer-managed key CloudWatch may use: alarms cannot publish to a topic encrypted
        with the AWS-managed ``alias/aws/sns`` key, whose policy cannot be changed to allow
        ``cloudwatch.amazonaws.com``. The statement is the one AWS documents in "Enable
        compatibility between event sources from AWS services and encrypted topics"
        (https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html).
        """
        key = in_flight_key(
            self, "AlarmsKey", "Encrypts the LoRA training service's alarm topic (CloudWatch may publish)"
        )
        key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudWatchAlarmsToPublish",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],  # in a key policy, "*" is this key
            )
        )
        return key

    @staticmethod
    def _service_metric(name: str, service_name: str) -> cloudwatch.Metric:
        return cloudwatch.Metric(
            namespace=METRICS_NAMESPACE,
            metric_name=name,
            dimensions_map={"service": service_name},
            statistic="Sum",
            period=Duration.minutes(5),
        )

    def _alarm(self, name: str, metric: cloudwatch.IMetric, threshold: float) -> cloudwatch.Alarm:
        alarm = cloudwatch.Alarm(
            self,
            name,
            metric=metric,
            threshold=threshold,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        alarm.add_alarm_action(actions.SnsAction(self.topic))
        return alarm

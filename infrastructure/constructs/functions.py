"""The Lambda functions (API, SageMaker events, reconciler, webhook delivery) and their
least-privilege grants (the notification grants are in ``constructs/notifications.py``)."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from functions.domain.background_tasks import TASK_TIMEOUT_SECONDS
from functions.domain.storage_layout import DATASETS_PREFIX, MODELS_PREFIX, TRAININGS_PREFIX
from functions.settings import METRICS_NAMESPACE, EnvVar
from infrastructure.constructs.notifications import DELIVERY_TIMEOUT_SECONDS
from infrastructure.constructs.queues import dead_letter_queue
from infrastructure.lambda_bundling import FUNCTIONS, TASKS_REQUIREMENTS, asset_hash, bundling_options
from infrastructure.nag import acknowledge, acknowledge_wildcards, arn_token, nag_arn

SERVICE_NAME = "lora-training"
# arm64 (Graviton): about 20 % cheaper per GB-second than x86 and every dependency ships aarch64
# wheels. Python 3.14: the newest Lambda runtime (cdk-nag L1), with wheels for all pins.
RUNTIME = lambda_.Runtime.PYTHON_3_14
ARCHITECTURE = lambda_.Architecture.ARM_64


class ServiceFunctions(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        environment: dict[str, str],
        table: dynamodb.ITable,
        idempotency_table: dynamodb.ITable,
        bucket: s3.IBucket,
        training_role: iam.IRole,
        page_token_secret: secretsmanager.ISecret,
        job_name_prefix: str,
        log_retention: logs.RetentionDays,
        removal_policy: RemovalPolicy,
        reserved_concurrency: bool,
    ) -> None:
        super().__init__(scope, construct_id)
        self._stack = Stack.of(self)
        # The bundler copies functions/ under its own name (imports are ``functions.*``) beside the wheels.
        self._code = lambda_.Code.from_asset(
            str(FUNCTIONS), bundling=bundling_options(), asset_hash=asset_hash()
        )
        env = {
            **environment,
            "POWERTOOLS_SERVICE_NAME": SERVICE_NAME,
            "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
            "POWERTOOLS_LOG_LEVEL": "INFO",
        }
        self._log_retention, self._removal_policy = log_retention, removal_policy
        self.api = self._function(
            "Api", "functions.api.handler.lambda_handler", env, memory=512, timeout=29,
            description="REST API: models, datasets, configs, trainings",
            reserved=None,  # bounded at the edge by the API stage's throttling
        )  # fmt: skip
        self.events = self._function(
            "Events", "functions.events.handler.lambda_handler", env, memory=512, timeout=120,
            description="SageMaker training state changes: statuses, LoRA registration",
            reserved=10 if reserved_concurrency else None,
        )  # fmt: skip
        self.reconciler = self._function(
            "Reconciler", "functions.reconciler.handler.lambda_handler", env, memory=512, timeout=300,
            description="Repairs jobs whose SageMaker events were lost",
            reserved=1 if reserved_concurrency else None,  # never two repair runs at once
        )  # fmt: skip
        # Background tasks (dataset crops, model imports): the same code plus Pillow, in its own
        # asset so the other functions' bundles stay small.
        self.tasks = self._function(
            "Tasks", "functions.tasks.handler.lambda_handler", env, memory=2048,
            timeout=TASK_TIMEOUT_SECONDS,
            description="Background tasks: dataset crops, model imports from a URL",
            reserved=5 if reserved_concurrency else None,  # bounds parallel downloads and image work
            code=lambda_.Code.from_asset(
                str(FUNCTIONS), bundling=bundling_options(TASKS_REQUIREMENTS),
                asset_hash=asset_hash(TASKS_REQUIREMENTS),
            ),
        )  # fmt: skip
        self.tasks_dead_letters = dead_letter_queue(
            self, "TaskDeadLetters", "background tasks (the tasks function's on-failure destination)"
        )
        # Lambda retries a failed asynchronous invocation twice, then hands the event here; the
        # record it worked on is failed by the next reader once its deadline has passed.
        self.tasks.configure_async_invoke(
            retry_attempts=2,
            max_event_age=Duration.hours(1),
            on_failure=destinations.SqsDestination(self.tasks_dead_letters),
        )
        self.tasks.grant_invoke(self.api)
        acknowledge_wildcards(
            self.api,
            [f"{arn_token(self.tasks)}:*"],
            "grant_invoke's qualified form of the tasks function's own ARN (its versions/aliases).",
        )
        self.api.add_environment(EnvVar.TASKS_FUNCTION_NAME, self.tasks.function_name)
        table.grant_read_write_data(self.tasks)
        self._grant_objects(
            self.tasks,
            bucket,
            ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
            (MODELS_PREFIX, DATASETS_PREFIX),
        )
        self.tasks.add_to_role_policy(
            iam.PolicyStatement(actions=["s3:ListBucket"], resources=[bucket.bucket_arn])
        )
        self.webhooks = self._function(
            "Webhooks", "functions.webhooks.handler.lambda_handler", env, memory=256,
            timeout=DELIVERY_TIMEOUT_SECONDS,
            description="Delivers signed webhooks of ended training jobs (SQS, retries, DLQ)",
            reserved=5 if reserved_concurrency else None,  # bounds outbound calls to receivers
        )  # fmt: skip
        for function in (self.api, self.events, self.reconciler):
            table.grant_read_write_data(function)
        idempotency_table.grant_read_write_data(self.api)
        page_token_secret.grant_read(self.api)
        self._grant_objects(
            self.api,
            bucket,
            ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
            (MODELS_PREFIX, DATASETS_PREFIX, TRAININGS_PREFIX),
        )
        self._grant_objects(
            self.events, bucket, ["s3:GetObject", "s3:PutObject"], (MODELS_PREFIX, TRAININGS_PREFIX)
        )
        self._grant_objects(
            self.reconciler, bucket, ["s3:GetObject", "s3:PutObject"], (MODELS_PREFIX, TRAININGS_PREFIX)
        )
        for function in (self.api, self.events, self.reconciler):
            function.add_to_role_policy(
                iam.PolicyStatement(actions=["s3:ListBucket"], resources=[bucket.bucket_arn])
            )
        stack = self._stack
        jobs_arn = (
            f"arn:{stack.partition}:sagemaker:{stack.region}:{stack.account}:training-job/{job_name_prefix}-*"
        )
        self.api.add_to_role_policy(
            iam.PolicyStatement(
                sid="LaunchTrainingJobs",
                actions=[
                    "sagemaker:CreateTrainingJob",
                    "sagemaker:DescribeTrainingJob",
                    "sagemaker:StopTrainingJob",
                    "sagemaker:AddTags",
                ],
                resources=[jobs_arn],
            )
        )
        self.reconciler.add_to_role_policy(
            iam.PolicyStatement(
                sid="DescribeTrainingJobs", actions=["sagemaker:DescribeTrainingJob"], resources=[jobs_arn]
            )
        )
        self.api.add_to_role_policy(
            iam.PolicyStatement(
                sid="PassTrainingRole",
                actions=["iam:PassRole"],
                resources=[training_role.role_arn],
                conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
            )
        )
        self._grant_training_logs(environment[EnvVar.TRAINING_LOG_GROUP], job_name_prefix)
        bucket_arn, table_arn = arn_token(bucket), arn_token(table)
        jobs_wildcard = nag_arn(stack, "sagemaker", f"training-job/{job_name_prefix}-*")
        wildcards = {
            self.api: [*(f"{bucket_arn}/{p}*" for p in (MODELS_PREFIX, DATASETS_PREFIX, TRAININGS_PREFIX)),
                       jobs_wildcard],
            self.events: [f"{bucket_arn}/{p}*" for p in (MODELS_PREFIX, TRAININGS_PREFIX)],
            self.reconciler: [*(f"{bucket_arn}/{p}*" for p in (MODELS_PREFIX, TRAININGS_PREFIX)),
                              jobs_wildcard],
            self.tasks: [f"{bucket_arn}/{p}*" for p in (MODELS_PREFIX, DATASETS_PREFIX)],
        }  # fmt: skip
        for function, resources in wildcards.items():
            acknowledge_wildcards(
                function,
                resources,
                "Object keys are per record under the service's fixed prefixes; training jobs are named "
                "<this stack's prefix>-<job id>, so the prefix is the narrowest resource.",
            )
            acknowledge_wildcards(function, [f"{table_arn}/index/*"], "The table's own indexes (gsi1-3).")
            acknowledge_wildcards(
                function,
                ["*"],
                "Only xray:PutTraceSegments/PutTelemetryRecords, which have no resource-level form.",
            )
        acknowledge_wildcards(
            self.webhooks,
            ["*"],
            "Only xray:PutTraceSegments/PutTelemetryRecords, which have no resource-level form.",
        )
        for function in (self.api, self.events, self.reconciler, self.webhooks, self.tasks):
            acknowledge(
                function,
                "IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
                "AWSLambdaBasicExecutionRole only grants writing this function's own log streams.",
            )

    def _function(
        self,
        name: str,
        handler: str,
        env: dict[str, str],
        *,
        memory: int,
        timeout: int,
        description: str,
        reserved: int | None,
        code: lambda_.Code | None = None,
    ) -> lambda_.Function:
        log_group = logs.LogGroup(
            self, f"{name}Logs", retention=self._log_retention, removal_policy=self._removal_policy
        )
        return lambda_.Function(
            self,
            name,
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            handler=handler,
            code=code or self._code,
            memory_size=memory,
            timeout=Duration.seconds(timeout),
            environment=env,
            tracing=lambda_.Tracing.ACTIVE,
            log_group=log_group,
            reserved_concurrent_executions=reserved,
            description=description,
        )

    def _grant_training_logs(self, log_group: str, job_name_prefix: str) -> None:
        """GET /trainings/{id}/logs: read this stack's jobs' streams in SageMaker's log group.

        Streams are ``<job name>/algo-1-<epoch>`` and job names ``<prefix>-<id>``, so reading is
        scoped to this stack's prefix. DescribeLogStreams is authorised on the log group as a
        whole (it has no per-stream form); the API always passes the job's own stream prefix.
        """
        stack = self._stack
        group_arn = f"arn:{stack.partition}:logs:{stack.region}:{stack.account}:log-group:{log_group}"
        self.api.add_to_role_policy(
            iam.PolicyStatement(
                sid="ReadTrainingJobLogs",
                actions=["logs:GetLogEvents"],
                resources=[f"{group_arn}:log-stream:{job_name_prefix}-*"],
            )
        )
        self.api.add_to_role_policy(
            iam.PolicyStatement(
                sid="ListTrainingJobLogStreams",
                actions=["logs:DescribeLogStreams"],
                resources=[group_arn, f"{group_arn}:*"],
            )
        )
        acknowledge_wildcards(
            self.api,
            [nag_arn(stack, "logs", f"log-group:{log_group}:log-stream:{job_name_prefix}-*")],
            "Training job log streams are named <job name>/algo-1-<epoch> and this stack's jobs "
            "<prefix>-<job id>: the prefix is the narrowest resource.",
        )
        acknowledge_wildcards(
            self.api,
            [nag_arn(stack, "logs", f"log-group:{log_group}:*")],
            "logs:DescribeLogStreams (read-only, stream names only) is authorised on the whole log "
            "group; the API always filters by the job's own stream prefix.",
        )

    @staticmethod
    def _grant_objects(
        function: lambda_.Function, bucket: s3.IBucket, actions: list[str], prefixes: tuple[str, ...]
    ) -> None:
        function.add_to_role_policy(
            iam.PolicyStatement(actions=actions, resources=[f"{bucket.bucket_arn}/{p}*" for p in prefixes])
        )


__all__ = ["SERVICE_NAME", "EnvVar", "ServiceFunctions"]

"""The Lambda functions (API, SageMaker events, reconciler, background tasks, webhook delivery).

Each function is built by one method that lists, in one place, the environment variables it is
given and the permissions that go with them: a capability (``_records``, ``_objects``,
``_notifications``, ...) adds its variables *and* its grants together, so a function can never
be told about a resource it may not use, nor be allowed one it is not told about. The code reads
only what it is given (``functions/settings.py``); ``tests/infrastructure/test_function_permissions.py``
checks the calls each function's code makes against its role in the synthesized template.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from functions.domain.background_tasks import TASK_TIMEOUT_SECONDS
from functions.domain.batch_queue import BATCH_TRAINING_JOB_PREFIX
from functions.domain.storage_layout import DATASETS_PREFIX, MODELS_PREFIX, TRAININGS_PREFIX
from functions.settings import DEFAULTS, METRICS_NAMESPACE, EnvVar
from infrastructure.config import DeploymentConfig
from infrastructure.constructs.keys import in_flight_key
from infrastructure.constructs.notifications import DELIVERY_TIMEOUT_SECONDS, ServiceNotifications
from infrastructure.constructs.queues import dead_letter_queue
from infrastructure.constructs.training import TrainingEnvironment
from infrastructure.constructs.training_queue import TrainingQueue
from infrastructure.lambda_bundling import FUNCTIONS, TASKS_REQUIREMENTS, asset_hash, bundling_options
from infrastructure.nag import acknowledge, acknowledge_wildcards, arn_token, nag_arn

SERVICE_NAME = "lora-training"
# arm64 (Graviton): about 20 % cheaper per GB-second than x86 and every dependency ships aarch64
# wheels. Python 3.14: the newest Lambda runtime (cdk-nag L1), with wheels for all pins.
RUNTIME = lambda_.Runtime.PYTHON_3_14
ARCHITECTURE = lambda_.Architecture.ARM_64
# The API function's alias: API Gateway invokes this published version (SnapStart restores
# snapshots of published versions only, never $LATEST).
API_ALIAS = "live"
# Opt-in reserved concurrency (context reservedConcurrency=true; README "Deploy to AWS"): 21 in all.
# Lambda keeps 100 executions of the account's limit unreserved, so the opt-in needs a limit of
# at least 121; new accounts often start at 10 or 50 and the default deploy reserves none.
RESERVED_CONCURRENCY = {"Events": 10, "Reconciler": 1, "Tasks": 5, "Webhooks": 5}
_XRAY_ONLY = "Only xray:PutTraceSegments/PutTelemetryRecords, which have no resource-level form."


@dataclass(frozen=True)
class ServiceResources:
    """What the functions are given access to (each function only a part of it)."""

    table: dynamodb.ITable
    idempotency_table: dynamodb.ITable
    bucket: s3.IBucket
    training: TrainingEnvironment
    page_token_secret: secretsmanager.ISecret
    notifications: ServiceNotifications
    job_name_prefix: str
    training_queue: TrainingQueue | None = None  # context trainingQueue=true


class ServiceFunctions(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        resources: ServiceResources,
        config: DeploymentConfig,
        log_retention: logs.RetentionDays,
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        self._stack = Stack.of(self)
        self._r, self._config = resources, config
        self._log_retention, self._removal_policy = log_retention, removal_policy
        # The bundler copies functions/ under its own name (imports are ``functions.*``) beside the wheels.
        self._code = lambda_.Code.from_asset(
            str(FUNCTIONS), bundling=bundling_options(), asset_hash=asset_hash()
        )
        self.import_token_key = self._import_token_key()
        self.tasks, self.tasks_dead_letters = self._tasks_function()
        self.api, self.api_alias = self._api_function()
        self.events = self._events_function()
        self.reconciler = self._reconciler_function()
        self.webhooks = self._webhooks_function()
        for function in (self.api, self.events, self.reconciler, self.webhooks, self.tasks):
            acknowledge_wildcards(function, ["*"], _XRAY_ONLY)
            acknowledge(
                function,
                "IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
                "AWSLambdaBasicExecutionRole only grants writing this function's own log streams.",
            )

    # ---- the functions: each one's environment and grants, together ----

    def _api_function(self) -> tuple[lambda_.Function, lambda_.Alias]:
        """REST API: every use case; the only reader of the page-token secret."""
        r, config = self._r, self._config
        api = self._function(
            "Api", "functions.api.handler.lambda_handler", memory=512, timeout=29,
            description="REST API: models, datasets, configs, trainings",
            snap_start=config.snap_start,
        )  # fmt: skip
        self._records(api)
        self._give(api, {EnvVar.IDEMPOTENCY_TABLE_NAME: r.idempotency_table.table_name})
        r.idempotency_table.grant_read_write_data(api)
        self._objects(
            api,
            ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
            (MODELS_PREFIX, DATASETS_PREFIX, TRAININGS_PREFIX),
        )
        self._quotas(api)
        if config.owner_session_roles:
            self._give(api, {EnvVar.OWNER_SESSION_ROLES: ",".join(config.owner_session_roles)})
        self._give(api, {EnvVar.PAGE_TOKEN_SECRET_ARN: r.page_token_secret.secret_arn})
        r.page_token_secret.grant_read(api)
        self._launch_trainings(api)
        self._read_training_logs(api)
        self._notifications(api)
        self._give(api, {EnvVar.TASKS_FUNCTION_NAME: self.tasks.function_name})
        self._give(api, {EnvVar.IMPORT_TOKEN_KEY_ARN: self.import_token_key.key_arn})
        self.import_token_key.grant(api, "kms:Encrypt")  # grant_encrypt adds ReEncrypt*, GenerateDataKey*
        self.tasks.grant_invoke(api)
        acknowledge_wildcards(
            api,
            [f"{arn_token(self.tasks)}:*"],
            "grant_invoke's qualified form of the tasks function's own ARN (its versions/aliases).",
        )
        # Each deploy publishes a version when the code or configuration changes; the alias
        # follows it. With SnapStart, Lambda snapshots the initialised version at publish time.
        alias = lambda_.Alias(self, "ApiLive", alias_name=API_ALIAS, version=api.current_version)
        return api, alias

    def _events_function(self) -> lambda_.Function:
        """SageMaker state changes: job records, LoRA registration, notifications."""
        events = self._function(
            "Events", "functions.events.handler.lambda_handler", memory=512, timeout=120,
            description="SageMaker training state changes: statuses, LoRA registration",
        )  # fmt: skip
        self._records(events)
        self._objects(events, ["s3:GetObject", "s3:PutObject"], (MODELS_PREFIX, TRAININGS_PREFIX))
        self._captions_datasets(events)
        self._give(events, {EnvVar.JOB_NAME_PREFIX: self._r.job_name_prefix})
        # A SageMaker event of a job Batch renamed is checked with Batch before it is applied
        # (functions.services.job_events.confirmed_by_batch).
        self._follow_queue(events)
        self._notifications(events)
        return events

    def _reconciler_function(self) -> lambda_.Function:
        """Repairs jobs whose events were lost: the events function's rights plus DescribeTrainingJob."""
        reconciler = self._function(
            "Reconciler", "functions.reconciler.handler.lambda_handler", memory=512, timeout=300,
            description="Repairs jobs whose SageMaker events were lost",
        )  # fmt: skip
        self._records(reconciler)
        self._objects(reconciler, ["s3:GetObject", "s3:PutObject"], (MODELS_PREFIX, TRAININGS_PREFIX))
        self._captions_datasets(reconciler)
        self._give(reconciler, {EnvVar.JOB_NAME_PREFIX: self._r.job_name_prefix})
        reconciler.add_to_role_policy(
            iam.PolicyStatement(
                sid="DescribeTrainingJobs",
                actions=["sagemaker:DescribeTrainingJob"],
                resources=[self._jobs_arn],
            )
        )
        self._acknowledge_jobs(reconciler)
        self._follow_queue(reconciler)
        self._notifications(reconciler)
        return reconciler

    def _import_token_key(self) -> kms.Key:
        """Seals a gated import's access token from the API (encrypt) to the tasks function
        (decrypt) only (functions/adapters/token_sealer.py): the token is never stored."""
        return in_flight_key(
            self,
            "ImportTokenKey",
            "Seals gated model imports' access tokens (API to tasks function)",
        )

    def _tasks_function(self) -> tuple[lambda_.Function, sqs.Queue]:
        """Background tasks (dataset crops, model imports): the same code plus Pillow, in its own
        asset so the other functions' bundles stay small."""
        tasks = self._function(
            "Tasks", "functions.tasks.handler.lambda_handler", memory=2048, timeout=TASK_TIMEOUT_SECONDS,
            description="Background tasks: dataset crops, model imports from a URL",
            code=lambda_.Code.from_asset(
                str(FUNCTIONS), bundling=bundling_options(TASKS_REQUIREMENTS),
                asset_hash=asset_hash(TASKS_REQUIREMENTS),
            ),
        )  # fmt: skip
        self._records(tasks)
        self._objects(
            tasks,
            ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
            (MODELS_PREFIX, DATASETS_PREFIX),
        )
        self._give(tasks, {EnvVar.MAX_STORAGE_BYTES_PER_OWNER: str(self._config.max_storage_bytes_per_owner)})
        self._give(tasks, {EnvVar.IMPORT_TOKEN_KEY_ARN: self.import_token_key.key_arn})
        self.import_token_key.grant(tasks, "kms:Decrypt")
        dead_letters = dead_letter_queue(
            self, "TaskDeadLetters", "background tasks (the tasks function's on-failure destination)"
        )
        # Lambda retries a failed asynchronous invocation twice, then hands the event here; the
        # record it worked on is failed by the next reader once its deadline has passed.
        tasks.configure_async_invoke(
            retry_attempts=2,
            max_event_age=Duration.hours(1),
            on_failure=destinations.SqsDestination(dead_letters),
        )
        return tasks, dead_letters

    def _webhooks_function(self) -> lambda_.Function:
        """Webhook delivery: consumes the queue and reads the signing secret; no table, no bucket."""
        notifications = self._r.notifications
        webhooks = self._function(
            "Webhooks", "functions.webhooks.handler.lambda_handler", memory=256,
            timeout=DELIVERY_TIMEOUT_SECONDS,
            description="Delivers signed webhooks of ended training jobs (SQS, retries, DLQ)",
        )  # fmt: skip
        self._give(
            webhooks,
            {
                EnvVar.WEBHOOK_QUEUE_URL: notifications.webhook_queue.queue_url,
                EnvVar.WEBHOOK_SIGNING_SECRET_ARN: notifications.signing_secret.secret_arn,
            },
        )
        notifications.signing_secret.grant_read(webhooks)
        # The event source grants receive/delete/change-visibility on this queue only.
        webhooks.add_event_source(
            sources.SqsEventSource(
                notifications.webhook_queue,
                batch_size=10,
                max_batching_window=Duration.seconds(1),
                report_batch_item_failures=True,
            )
        )
        return webhooks

    # ---- capabilities: environment variables and the grants that go with them ----

    @staticmethod
    def _give(function: lambda_.Function, variables: dict[EnvVar, str]) -> None:
        for name, value in variables.items():
            function.add_environment(str(name), value)

    def _records(self, function: lambda_.Function) -> None:
        self._give(function, {EnvVar.TABLE_NAME: self._r.table.table_name})
        self._r.table.grant_read_write_data(function)
        acknowledge_wildcards(
            function, [f"{arn_token(self._r.table)}/index/*"], "The table's own indexes (gsi1-3)."
        )

    def _captions_datasets(self, function: lambda_.Function) -> None:
        """A captions job's end (functions.services.dataset_captions): its output becomes a
        dataset's files (CopyObject: GetObject on trainings/, PutObject on datasets/), undeclared
        objects are deleted as for an upload, a failed dataset's files are removed, and the new
        captions join the owner's cache (datasets/<owner>/caption-cache/)."""
        self._objects(function, ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"], (DATASETS_PREFIX,))

    def _objects(self, function: lambda_.Function, actions: list[str], prefixes: tuple[str, ...]) -> None:
        bucket = self._r.bucket
        self._give(function, {EnvVar.BUCKET_NAME: bucket.bucket_name})
        function.add_to_role_policy(
            iam.PolicyStatement(actions=actions, resources=[f"{bucket.bucket_arn}/{p}*" for p in prefixes])
        )
        function.add_to_role_policy(
            iam.PolicyStatement(actions=["s3:ListBucket"], resources=[bucket.bucket_arn])
        )
        acknowledge_wildcards(
            function,
            [f"{arn_token(bucket)}/{p}*" for p in prefixes],
            "Object keys are per record under the service's fixed prefixes.",
        )

    def _quotas(self, function: lambda_.Function) -> None:
        config = self._config
        variables = {
            EnvVar.ALLOWED_INSTANCE_TYPES: ",".join(config.allowed_instance_types),
            EnvVar.DEFAULT_USE_SPOT: str(config.default_use_spot).lower(),
            EnvVar.MAX_RUNTIME_SECONDS: str(config.max_runtime_seconds),
            EnvVar.MAX_CONCURRENT_JOBS_PER_OWNER: str(config.max_concurrent_jobs_per_owner),
            EnvVar.MAX_STORAGE_BYTES_PER_OWNER: str(config.max_storage_bytes_per_owner),
        }
        if config.instance_prices:
            variables[EnvVar.INSTANCE_PRICES_JSON] = json.dumps(config.instance_prices)
        self._give(function, variables)

    @property
    def _jobs_arn(self) -> str:
        stack = self._stack
        return (
            f"arn:{stack.partition}:sagemaker:{stack.region}:{stack.account}:"
            f"training-job/{self._r.job_name_prefix}-*"
        )

    def _acknowledge_jobs(self, function: lambda_.Function) -> None:
        acknowledge_wildcards(
            function,
            [nag_arn(self._stack, "sagemaker", f"training-job/{self._r.job_name_prefix}-*")],
            "Training jobs are named <this stack's prefix>-<job id>: the prefix is the narrowest resource.",
        )

    def _launch_trainings(self, function: lambda_.Function) -> None:
        """Create, describe and stop this stack's jobs, passing only the training role to SageMaker."""
        config, training = self._config, self._r.training
        self._give(
            function,
            {
                EnvVar.TRAINING_IMAGE_URI: training.image.image_uri,
                EnvVar.TRAINING_ROLE_ARN: training.role.role_arn,
                EnvVar.JOB_NAME_PREFIX: self._r.job_name_prefix,
                EnvVar.TRAINING_ENGINE: "kohya",
                EnvVar.TRAINING_NETWORK_ISOLATION: str(config.network_isolation).lower(),
                EnvVar.TRAINING_SUBNET_IDS: ",".join(config.training_subnet_ids),
                EnvVar.TRAINING_SECURITY_GROUP_IDS: ",".join(config.training_security_group_ids),
            },
        )
        function.add_to_role_policy(
            iam.PolicyStatement(
                sid="LaunchTrainingJobs",
                actions=[
                    "sagemaker:CreateTrainingJob",
                    "sagemaker:DescribeTrainingJob",
                    "sagemaker:StopTrainingJob",
                    "sagemaker:AddTags",  # CreateTrainingJob with Tags needs it on the job
                ],
                resources=[self._jobs_arn],
            )
        )
        function.add_to_role_policy(
            iam.PolicyStatement(
                sid="PassTrainingRole",
                actions=["iam:PassRole"],
                resources=[training.role.role_arn],
                conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
            )
        )
        self._acknowledge_jobs(function)
        queue = self._r.training_queue
        if queue is None:
            return
        function.add_to_role_policy(
            iam.PolicyStatement(
                sid="SubmitToTrainingQueue", actions=["batch:SubmitServiceJob"], resources=[queue.queue_arn]
            )
        )
        function.add_to_role_policy(
            iam.PolicyStatement(
                sid="TerminateQueuedTrainings",
                actions=["batch:TerminateServiceJob"],
                resources=[queue.service_jobs_arn],
            )
        )
        self._follow_queue(function)

    def _follow_queue(self, function: lambda_.Function) -> None:
        """Find and describe this stack's service jobs, and the training jobs Batch creates for them."""
        queue = self._r.training_queue
        if queue is None:
            return
        self._give(function, {EnvVar.TRAINING_LAUNCHER: "queue", EnvVar.TRAINING_JOB_QUEUE: queue.queue_arn})
        function.add_to_role_policy(
            iam.PolicyStatement(
                sid="DescribeQueuedTrainings",
                actions=["batch:DescribeServiceJob"],
                resources=[queue.service_jobs_arn],
            )
        )
        # ListServiceJobs names no resource type in the IAM Service Authorization Reference (as
        # ListJobs): only "*" can grant it. It lists jobs, nothing more.
        function.add_to_role_policy(
            iam.PolicyStatement(sid="FindQueuedTrainings", actions=["batch:ListServiceJobs"], resources=["*"])
        )
        # Batch names the training jobs it creates AWSBatch<...> (its service-linked role's policy,
        # AWSBatchServiceRolePolicyForSageMaker, is scoped to training-job/AWSBatch*). The name is
        # known first from the TrainingJobArn Batch reports, which SageMaker spells in lower case
        # (BatchLauncher.describe asks by that spelling), so both spellings are granted.
        stack = self._stack
        jobs = f"arn:{stack.partition}:sagemaker:{stack.region}:{stack.account}:training-job/"
        lower_prefix = BATCH_TRAINING_JOB_PREFIX.lower()
        function.add_to_role_policy(
            iam.PolicyStatement(
                sid="DescribeBatchTrainingJobs",
                actions=["sagemaker:DescribeTrainingJob"],
                resources=[f"{jobs}{prefix}*" for prefix in (BATCH_TRAINING_JOB_PREFIX, lower_prefix)],
            )
        )
        acknowledge_wildcards(
            function,
            [
                nag_arn(stack, "batch", "service-job/*"),
                "*",
                nag_arn(stack, "sagemaker", f"training-job/{BATCH_TRAINING_JOB_PREFIX}*"),
                nag_arn(stack, "sagemaker", f"training-job/{lower_prefix}*"),
            ],
            "Service-job ids are assigned by Batch at submit (no prefix of ours); ListServiceJobs has no "
            "resource type; Batch names its SageMaker jobs AWSBatch<...>, the narrowest pattern it allows.",
        )

    def _read_training_logs(self, function: lambda_.Function) -> None:
        """GET /trainings/{id}/logs: DescribeLogStreams and GetLogEvents in SageMaker's log group.

        The IAM Service Authorization Reference (CloudWatch Logs) lists both actions with the
        ``log-group`` resource type only, so a grant on ``...:log-stream:<prefix>-*`` never
        matches them; they are granted on the log group (ARN with and without the trailing
        ``:*``), and the API always names its own job's stream prefix.
        """
        stack, group = self._stack, DEFAULTS.training_log_group
        self._give(function, {EnvVar.TRAINING_LOG_GROUP: group})
        group_arn = f"arn:{stack.partition}:logs:{stack.region}:{stack.account}:log-group:{group}"
        function.add_to_role_policy(
            iam.PolicyStatement(
                sid="ReadTrainingJobLogs",
                actions=["logs:DescribeLogStreams", "logs:GetLogEvents"],
                resources=[group_arn, f"{group_arn}:*"],
            )
        )
        acknowledge_wildcards(
            function,
            [nag_arn(stack, "logs", f"log-group:{group}:*")],
            "Read-only on SageMaker's training log group (log-group is these actions' only resource "
            "type); the API always reads its own job's streams.",
        )

    def _notifications(self, function: lambda_.Function) -> None:
        """Publishers: put events on the service's bus and enqueue webhook deliveries."""
        notifications = self._r.notifications
        self._give(
            function,
            {
                EnvVar.EVENT_BUS_NAME: notifications.bus.event_bus_name,
                EnvVar.WEBHOOK_QUEUE_URL: notifications.webhook_queue.queue_url,
            },
        )
        notifications.bus.grant_put_events_to(function)
        notifications.webhook_queue.grant_send_messages(function)

    def _function(
        self,
        name: str,
        handler: str,
        *,
        memory: int,
        timeout: int,
        description: str,
        code: lambda_.Code | None = None,
        snap_start: bool = False,
    ) -> lambda_.Function:
        log_group = logs.LogGroup(
            self, f"{name}Logs", retention=self._log_retention, removal_policy=self._removal_policy
        )
        reserved = RESERVED_CONCURRENCY.get(name) if self._config.reserved_concurrency else None
        return lambda_.Function(
            self,
            name,
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            handler=handler,
            code=code or self._code,
            memory_size=memory,
            timeout=Duration.seconds(timeout),
            environment={
                "POWERTOOLS_SERVICE_NAME": SERVICE_NAME,
                "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
                "POWERTOOLS_LOG_LEVEL": "INFO",
            },
            tracing=lambda_.Tracing.ACTIVE,
            log_group=log_group,
            reserved_concurrent_executions=reserved,
            snap_start=lambda_.SnapStartConf.ON_PUBLISHED_VERSIONS if snap_start else None,
            description=description,
        )


__all__ = ["API_ALIAS", "RESERVED_CONCURRENCY", "SERVICE_NAME", "ServiceFunctions", "ServiceResources"]

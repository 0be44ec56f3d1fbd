"""The local runtime: the whole service on one machine, started and stopped as one object.

    moto (DynamoDB + S3 + CloudWatch Logs) on loopback   <- the handlers' boto3 clients (AWS_ENDPOINT_URL_*)
    local AWS Batch (REST-JSON)        <- the control plane's boto3 Batch client (queued trainings)
        service-job queue: capacity, fair share, priority -> the local SageMaker (in-process)
        service-job state-change events -> functions.events.handler.lambda_handler (in-process)
    local SageMaker (JSON 1.1)         <- the control plane's boto3 SageMaker client
        job runner -> training_container.entrypoint child processes (output -> CloudWatch Logs)
        state-change events -> functions.events.handler.lambda_handler (in-process)
    local API Gateway (HTTP)           -> functions.api.handler.lambda_handler (in-process)
    moto EventBridge bus + SQS webhook queue <- state-change notifications (docs/notifications.md)
        local SQS event source -> functions.webhooks.handler.lambda_handler (in-process)

The handlers are the unmodified Lambda code: only environment variables point them here.
State lives under the data directory (see ``state_snapshot`` and ``docs/LOCAL.md``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from functions.settings import DEFAULTS, EnvVar
from local_runtime.api_gateway import LocalApiServer
from local_runtime.aws_emulator import FAKE_ACCESS_KEY_ID, FAKE_SECRET_ACCESS_KEY, AwsEmulator, ResourceNames
from local_runtime.batch_jobs import BatchError, ServiceJobQueue
from local_runtime.batch_server import BatchWireServer, LocalBatch
from local_runtime.defaults import DEFAULT_API_PORT, DEFAULT_DATA_DIR, RUNTIME_INFO_FILE
from local_runtime.job_runner import LocalTrainingJobRunner, RunnerOptions
from local_runtime.lambda_invoker import LocalLambdaFunction
from local_runtime.lambda_server import LambdaWireServer, LocalLambdaService
from local_runtime.local_auth import DEFAULT_USER, LocalTokens
from local_runtime.log_shipping import restore_journals
from local_runtime.sagemaker_jobs import ACCOUNT_ID, SageMakerError, TrainingJobStore
from local_runtime.sagemaker_server import LocalSageMaker, SageMakerWireServer
from local_runtime.sqs_event_source import SqsEventSource
from local_runtime.state_snapshot import PeriodicSnapshots, StateSnapshot
from loractl.config import save_profile

logger = logging.getLogger("local_runtime")

API_HANDLER = "functions.api.handler.lambda_handler"
EVENTS_HANDLER = "functions.events.handler.lambda_handler"
WEBHOOKS_HANDLER = "functions.webhooks.handler.lambda_handler"
TASKS_HANDLER = "functions.tasks.handler.lambda_handler"
TASKS_FUNCTION = "lora-local-tasks"
TASKS_TIMEOUT_SECONDS = 900  # as the stack's tasks function
WEBHOOK_SECRET_FILE = "webhook-signing-secret"  # in the data directory; receivers verify with it
LOCAL_WEBHOOK_RETRY_BASE_SECONDS = 2  # local retries come quickly; AWS uses DEFAULTS
LOCAL_TRAINING_IMAGE = "local/lora-training:latest"  # recorded only; the runner runs the entrypoint module
LOCAL_ROLE_ARN = f"arn:aws:iam::{ACCOUNT_ID}:role/lora-local-training"
LOCAL_JOB_QUEUE = "lora-local-training-queue"
# Variables that would send the handlers' clients to real AWS instead of the emulator.
AWS_VARIABLES_TO_CLEAR = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL")


@dataclass(frozen=True)
class LocalRuntimeOptions:
    """Everything ``loractl local serve`` / ``make serve`` can set."""

    data_dir: Path = DEFAULT_DATA_DIR
    api_port: int = DEFAULT_API_PORT
    aws_port: int = 0
    sagemaker_port: int = 0
    region: str = "us-east-1"
    users: tuple[str, ...] = (DEFAULT_USER,)
    max_concurrent_jobs: int = 1
    # Trainings go through the local AWS Batch job queue (as a queued deployment's do); its
    # capacity, the local GPU budget, is ``max_concurrent_jobs``. False: CreateTrainingJob directly.
    queue_trainings: bool = True
    checkpoint_sync_seconds: float = 2.0
    stop_grace_seconds: float = 20.0
    snapshot_interval_seconds: float = 3.0
    write_cli_config: bool = True
    log_level: str = "WARNING"
    # Dotted paths of the Lambda handlers (another build of them can be served for testing).
    api_handler: str = API_HANDLER
    events_handler: str = EVENTS_HANDLER
    webhooks_handler: str = WEBHOOKS_HANDLER
    tasks_handler: str = TASKS_HANDLER
    names: ResourceNames = field(default_factory=ResourceNames)


@dataclass(frozen=True)
class RuntimeInfo:
    """What a client needs to reach a started runtime (also written to ``runtime.json``)."""

    api_url: str
    aws_endpoint_url: str
    sagemaker_endpoint_url: str
    data_dir: str
    tokens: dict[str, str]
    interrupted_jobs: list[str]
    restored_items: int
    restored_objects: int
    interrupted_tasks: list[str] = field(default_factory=list)


def end_interrupted_tasks(unfinished: list[tuple[str, Any]]) -> list[str]:
    """Fail the records of background tasks an earlier run accepted but never finished (as its
    unfinished training jobs are failed); returns "<kind> <record id>" of each one failed."""
    from functions.domain.background_tasks import BackgroundTask
    from functions.services.background import fail_interrupted
    from functions.services.context import service_context

    ended = []
    for function_name, event in unfinished:
        try:
            task = BackgroundTask.model_validate(event)
        except ValueError:
            logger.warning("an interrupted invocation of %s is not a background task; dropped", function_name)
            continue
        if fail_interrupted(service_context(), task):
            ended.append(f"{task.kind.value} {task.record_id}")
    return ended


class LocalRuntime:
    """Start everything with ``start()``, stop it with ``stop()`` (state is saved)."""

    def __init__(self, options: LocalRuntimeOptions) -> None:
        self.options = options
        self.data_dir = options.data_dir.resolve()
        self._emulator = AwsEmulator(options.region, options.aws_port)
        self._api: LocalApiServer | None = None
        self._sagemaker_server: SageMakerWireServer | None = None
        self._runner: LocalTrainingJobRunner | None = None
        self._sagemaker: LocalSageMaker | None = None
        self._batch_queue: ServiceJobQueue | None = None
        self._batch_server: BatchWireServer | None = None
        self._snapshots: PeriodicSnapshots | None = None
        self._webhooks: SqsEventSource | None = None
        self._webhook_queue: tuple[str, str] = ("", "")
        self._import_token_key = ""
        self._lambda_server: LambdaWireServer | None = None
        self.info: RuntimeInfo | None = None

    # --- start ---------------------------------------------------------------------------

    def start(self) -> RuntimeInfo:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        tokens = LocalTokens(self.data_dir / "tokens.json")
        for user in self.options.users:
            tokens.ensure_user(user)
        self._emulator.start()
        self._emulator.create_resources(self.options.names)
        self._webhook_queue = self._emulator.create_notification_resources(self.options.names)
        self._import_token_key = self._emulator.create_import_token_key()
        snapshot = StateSnapshot(
            self.data_dir / "state",
            self.options.names,
            self._emulator.client("dynamodb"),
            self._emulator.client("s3"),
        )
        restored_items, restored_objects = snapshot.restore()
        self._snapshots = PeriodicSnapshots(snapshot, self.options.snapshot_interval_seconds)

        events = LocalLambdaFunction(self.options.events_handler, "lora-local-events", self.options.region)
        sagemaker = self._start_sagemaker(events)
        tasks = LocalLambdaFunction(
            self.options.tasks_handler, TASKS_FUNCTION, self.options.region, TASKS_TIMEOUT_SECONDS
        )
        lambda_service = LocalLambdaService(
            {TASKS_FUNCTION: tasks},
            after_async=self._snapshots.save_now,
            journal_dir=self.data_dir / "lambda" / "in-flight",
        )
        unfinished = lambda_service.take_interrupted()
        self._lambda_server = LambdaWireServer(lambda_service)
        self._lambda_server.start()
        batch_url = self._start_batch(events) if self.options.queue_trainings else ""
        os.environ.update(
            self._handler_environment(sagemaker.endpoint_url, self._lambda_server.endpoint_url, batch_url)
        )
        for name in AWS_VARIABLES_TO_CLEAR:
            os.environ.pop(name, None)
        api_function = LocalLambdaFunction(self.options.api_handler, "lora-local-api", self.options.region)
        api_function.load()
        events.load()
        tasks.load()
        self._start_webhook_delivery()
        assert self._sagemaker is not None
        interrupted = self._sagemaker.recover_interrupted_jobs()
        if self._batch_queue is not None:
            self._batch_queue.start()  # after the recovery: it sees the interrupted jobs as ended
        interrupted_tasks = end_interrupted_tasks(unfinished)
        if interrupted_tasks:
            self._snapshots.save_now()

        self._api = LocalApiServer(
            api_function, tokens, port=self.options.api_port, after_mutation=self._snapshots.save_now
        )
        self._api.start()
        self._snapshots.start()
        self.info = RuntimeInfo(
            api_url=self._api.endpoint_url,
            aws_endpoint_url=self._emulator.endpoint_url,
            sagemaker_endpoint_url=sagemaker.endpoint_url,
            data_dir=str(self.data_dir),
            tokens={user: tokens.users[user] for user in sorted(tokens.users)},
            interrupted_jobs=interrupted,
            interrupted_tasks=interrupted_tasks,
            restored_items=restored_items,
            restored_objects=restored_objects,
        )
        self._publish(self.info)
        return self.info

    def _start_sagemaker(self, events: LocalLambdaFunction) -> SageMakerWireServer:
        store = TrainingJobStore(self.data_dir / "sagemaker" / "jobs")

        def deliver(event: dict[str, Any]) -> None:
            events.invoke(event)
            if self._snapshots is not None:
                self._snapshots.save_now()

        self._runner = LocalTrainingJobRunner(
            store,
            self._emulator.client("s3"),
            self.data_dir / "sagemaker" / "work",
            deliver,
            RunnerOptions(
                max_concurrent_jobs=self.options.max_concurrent_jobs,
                checkpoint_sync_seconds=self.options.checkpoint_sync_seconds,
                stop_grace_seconds=self.options.stop_grace_seconds,
            ),
            logs_client=self._emulator.client("logs"),
            log_group=DEFAULTS.training_log_group,
        )
        # moto keeps logs in memory: put back what earlier runs shipped (see log_shipping).
        restore_journals(
            self._emulator.client("logs"), DEFAULTS.training_log_group, self._runner.log_journals()
        )
        self._sagemaker = LocalSageMaker(store, self._runner, self.options.region)
        self._sagemaker_server = SageMakerWireServer(self._sagemaker, port=self.options.sagemaker_port)
        self._sagemaker_server.start()
        return self._sagemaker_server

    def _start_batch(self, events: LocalLambdaFunction) -> str:
        """The local AWS Batch queue in front of the local SageMaker (see local_runtime.batch_jobs)."""
        sagemaker = self._sagemaker
        assert sagemaker is not None and self._runner is not None
        store = sagemaker.store

        def start_training(payload: dict[str, Any]) -> str:
            try:
                return str(sagemaker.create_training_job(payload)["TrainingJobArn"])
            except SageMakerError as refused:
                raise BatchError(f"{refused.code}: {refused.message}") from refused

        def training_status(name: str) -> tuple[str, str] | None:
            try:
                record = store.get(name)
            except SageMakerError:
                return None
            return record.status, record.secondary_status

        def stop_training(name: str) -> None:
            with contextlib.suppress(SageMakerError):  # it ended meanwhile: followed like any end
                sagemaker.stop_training_job({"TrainingJobName": name})

        def deliver(event: dict[str, Any]) -> None:
            events.invoke(event)
            if self._snapshots is not None:
                self._snapshots.save_now()

        self._batch_queue = ServiceJobQueue(
            self.data_dir / "batch",
            capacity=self.options.max_concurrent_jobs,
            region=self.options.region,
            start_training=start_training,
            training_status=training_status,
            stop_training=stop_training,
            event_sink=deliver,
        )
        self._batch_server = BatchWireServer(LocalBatch(self._batch_queue))
        self._batch_server.start()
        return self._batch_server.endpoint_url

    def _start_webhook_delivery(self) -> None:
        """The webhook delivery Lambda behind an SQS event source on the emulated queue."""
        function = LocalLambdaFunction(
            self.options.webhooks_handler, "lora-local-webhooks", self.options.region
        )
        function.load()
        queue_url, queue_arn = self._webhook_queue
        self._webhooks = SqsEventSource(self._emulator.client("sqs"), queue_url, queue_arn, function)
        self._webhooks.start()

    def _page_token_secret(self) -> str:
        return self._local_secret("page-token-secret")

    def _local_secret(self, filename: str) -> str:
        """A random secret kept in the data directory (so it survives restarts), owner-only."""
        path = self.data_dir / filename
        if not path.is_file():
            path.write_text(secrets.token_hex(32), encoding="utf-8")
            path.chmod(0o600)
        return path.read_text(encoding="utf-8").strip()

    def _handler_environment(
        self, sagemaker_url: str, lambda_url: str, batch_url: str = ""
    ) -> dict[str, str]:
        """The Lambda environment of the stack, pointed at the local emulators."""
        names = self.options.names
        queued = {
            EnvVar.TRAINING_LAUNCHER: "queue",
            EnvVar.TRAINING_JOB_QUEUE: (
                f"arn:aws:batch:{self.options.region}:{ACCOUNT_ID}:job-queue/{LOCAL_JOB_QUEUE}"
            ),
            "AWS_ENDPOINT_URL_BATCH": batch_url,
        }
        return {
            **(queued if batch_url else {EnvVar.TRAINING_LAUNCHER: "direct"}),
            EnvVar.TABLE_NAME: names.table,
            EnvVar.IDEMPOTENCY_TABLE_NAME: names.idempotency_table,
            EnvVar.BUCKET_NAME: names.bucket,
            EnvVar.TRAINING_IMAGE_URI: LOCAL_TRAINING_IMAGE,
            EnvVar.TRAINING_ROLE_ARN: LOCAL_ROLE_ARN,
            EnvVar.JOB_NAME_PREFIX: DEFAULTS.job_name_prefix,
            EnvVar.ALLOWED_INSTANCE_TYPES: ",".join(DEFAULTS.allowed_instance_types),
            EnvVar.DEFAULT_USE_SPOT: "false",
            EnvVar.PAGE_TOKEN_SECRET: self._page_token_secret(),
            EnvVar.TRAINING_ENGINE: "diffusers",  # CPU-friendly engine; sd-scripts is not installed locally
            EnvVar.TRAINING_NETWORK_ISOLATION: "true",
            EnvVar.TRAINING_LOG_GROUP: DEFAULTS.training_log_group,
            EnvVar.EVENT_BUS_NAME: names.event_bus,
            EnvVar.WEBHOOK_QUEUE_URL: self._webhook_queue[0],
            EnvVar.WEBHOOK_SIGNING_SECRET: self._local_secret(WEBHOOK_SECRET_FILE),
            EnvVar.WEBHOOK_ALLOW_LOOPBACK_HTTP: "true",  # local receivers are plain http on loopback
            EnvVar.WEBHOOK_RETRY_BASE_SECONDS: str(LOCAL_WEBHOOK_RETRY_BASE_SECONDS),
            "AWS_ENDPOINT_URL_S3": self._emulator.endpoint_url,
            "AWS_ENDPOINT_URL_DYNAMODB": self._emulator.endpoint_url,
            "AWS_ENDPOINT_URL_EVENTBRIDGE": self._emulator.endpoint_url,
            "AWS_ENDPOINT_URL_SQS": self._emulator.endpoint_url,
            "AWS_ENDPOINT_URL_SAGEMAKER": sagemaker_url,
            "AWS_ENDPOINT_URL_LAMBDA": lambda_url,
            EnvVar.TASKS_FUNCTION_NAME: TASKS_FUNCTION,
            EnvVar.MODEL_IMPORT_ALLOW_LOOPBACK_HTTP: "true",  # local test servers are plain http on loopback
            EnvVar.IMPORT_TOKEN_KEY_ARN: self._import_token_key,
            "AWS_ENDPOINT_URL_KMS": self._emulator.endpoint_url,
            "AWS_ENDPOINT_URL_CLOUDWATCH_LOGS": self._emulator.endpoint_url,
            "AWS_ACCESS_KEY_ID": FAKE_ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": FAKE_SECRET_ACCESS_KEY,
            "AWS_REGION": self.options.region,
            "AWS_DEFAULT_REGION": self.options.region,
            "AWS_CONFIG_FILE": str(self._aws_config_file()),
            "POWERTOOLS_SERVICE_NAME": "lora-local",
            "POWERTOOLS_METRICS_NAMESPACE": "LoraLocal",
            "POWERTOOLS_METRICS_DISABLED": "true",
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_LOG_LEVEL": self.options.log_level,
        }

    def _aws_config_file(self) -> Path:
        # Path-style S3 addressing: presigned URLs must point at the emulator's IP:port, and a
        # virtual-hosted bucket name cannot be prepended to an IP address.
        path = self.data_dir / "aws-config"
        path.write_text(
            f"[default]\nregion = {self.options.region}\ns3 =\n    addressing_style = path\n",
            encoding="utf-8",
        )
        return path

    def _publish(self, info: RuntimeInfo) -> None:
        """Write runtime.json (for scripts and tests) and the loractl profile(s)."""
        info_path = self.data_dir / RUNTIME_INFO_FILE
        temporary = info_path.with_name(info_path.name + ".tmp")
        temporary.write_text(json.dumps({**info.__dict__, "pid": os.getpid(), "started_at": time.time()}))
        temporary.chmod(0o600)
        temporary.replace(info_path)
        if not self.options.write_cli_config:
            return
        for index, user in enumerate(sorted(info.tokens, key=lambda name: name != self.options.users[0])):
            profile = "local" if index == 0 else f"local-{user}"
            save_profile(
                profile, {"endpoint": info.api_url, "token": info.tokens[user]}, make_default=index == 0
            )

    # --- stop ----------------------------------------------------------------------------

    def save_state(self) -> None:
        """Mirror the emulated tables and bucket to the data directory now (as after a request)."""
        if self._snapshots is not None:
            self._snapshots.save_now()

    def stop(self) -> None:
        """Stop running jobs (recorded as failed), save the state, stop the servers."""
        if self._batch_server is not None:
            self._batch_server.stop()
        if self._batch_queue is not None:
            self._batch_queue.stop()
        if self._sagemaker_server is not None:
            self._sagemaker_server.stop()
        if self._runner is not None:
            self._runner.shutdown()
        if self._api is not None:
            self._api.stop()
        if self._webhooks is not None:
            self._webhooks.stop()
        if self._lambda_server is not None:
            self._lambda_server.stop()
        if self._snapshots is not None:
            self._snapshots.stop()
        self._emulator.stop()
        (self.data_dir / RUNTIME_INFO_FILE).unlink(missing_ok=True)

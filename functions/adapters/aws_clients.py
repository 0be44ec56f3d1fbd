"""boto3 clients, created lazily and once per process.

Plain ``boto3.client(...)`` on purpose: ``AWS_ENDPOINT_URL_<SERVICE>`` then redirects each client
(the local runtime points S3 and DynamoDB at moto and SageMaker at the local job runner), so
nothing here knows where it runs. Lazy, so importing a handler stays cheap on cold start.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import boto3
from botocore.config import Config

# Standard retry mode with a few attempts: SageMaker throttling is retried by botocore itself.
_RETRIES = Config(retries={"mode": "standard", "max_attempts": 4}, connect_timeout=5, read_timeout=30)


@cache
def s3_client() -> Any:
    # SigV4 presigning everywhere (regional endpoints; required for KMS-encrypted buckets).
    return boto3.client("s3", config=_RETRIES.merge(Config(signature_version="s3v4")))


@cache
def dynamodb_resource() -> Any:
    return boto3.resource("dynamodb", config=_RETRIES)


@cache
def sagemaker_client() -> Any:
    return boto3.client("sagemaker", config=_RETRIES)


@cache
def batch_client() -> Any:
    return boto3.client("batch", config=_RETRIES)


@cache
def events_client() -> Any:
    return boto3.client("events", config=_RETRIES)


@cache
def sqs_client() -> Any:
    return boto3.client("sqs", config=_RETRIES)


@cache
def kms_client() -> Any:
    return boto3.client("kms", config=_RETRIES)


@cache
def lambda_client() -> Any:
    return boto3.client("lambda", config=_RETRIES)


def secret_value(secret_arn: str) -> bytes:
    """A Secrets Manager secret's value, through Powertools' parameters utility.

    Its provider builds a plain ``boto3.client("secretsmanager")`` (so
    ``AWS_ENDPOINT_URL_SECRETS_MANAGER`` redirects it too) and caches the value; callers keep the
    result for the life of the process, so a cold start reads the secret once.
    """
    from aws_lambda_powertools.utilities import parameters  # only deployments with a secret need it

    value = parameters.get_secret(secret_arn, max_age=3600)
    if value is None or value == "":
        raise RuntimeError(f"secret {secret_arn} is empty")
    return value if isinstance(value, bytes) else str(value).encode()


@cache
def logs_client() -> Any:
    """CloudWatch Logs (training job logs); ``AWS_ENDPOINT_URL_CLOUDWATCH_LOGS`` redirects it."""
    return boto3.client("logs", config=_RETRIES)


# The services the API function's clients use (the others' are a subset).
API_SERVICES = ("dynamodb", "s3", "sagemaker", "events", "sqs", "lambda", "logs", "secretsmanager")


def preload_service_models(services: tuple[str, ...] = API_SERVICES) -> None:
    """Parse the services' botocore models into the default session's loader cache.

    Creating a client first reads and parses its JSON service model and endpoint rules, which
    is most of a client's creation time. Run before a SnapStart snapshot, that work is in the
    snapshot; clients themselves are still created after restore, on first use, so they never
    carry credentials or connections from the snapshot (Lambda docs "Handling uniqueness with
    Lambda SnapStart", "Using SnapStart with AWS SDKs").
    """
    session = boto3._get_default_session()._session
    for service in services:
        session.get_service_model(service)
        session.get_service_data(service)
        loader = session.get_component("data_loader")
        loader.load_service_model(service, "endpoint-rule-set-1")

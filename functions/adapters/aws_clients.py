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
def secretsmanager_client() -> Any:
    return boto3.client("secretsmanager", config=_RETRIES)

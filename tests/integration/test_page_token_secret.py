"""The page-token secret read from Secrets Manager (Powertools parameters) when only its ARN is set."""

from __future__ import annotations

import dataclasses
import uuid

import boto3
import pytest

from functions.services.context import page_token_secret
from functions.settings import Settings


def test_the_secret_comes_from_secrets_manager_when_an_arn_is_set(aws_emulator: str) -> None:
    value = f"s3cr3t-{uuid.uuid4().hex}"
    arn = boto3.client("secretsmanager").create_secret(Name=f"page-{uuid.uuid4().hex}", SecretString=value)[
        "ARN"
    ]
    settings = dataclasses.replace(Settings.from_env(), page_token_secret="", page_token_secret_arn=arn)
    assert page_token_secret(settings) == value.encode()


def test_a_deployment_without_any_secret_refuses_to_start(aws_emulator: str) -> None:
    settings = dataclasses.replace(Settings.from_env(), page_token_secret="", page_token_secret_arn="")
    with pytest.raises(RuntimeError, match="PAGE_TOKEN_SECRET"):
        page_token_secret(settings)

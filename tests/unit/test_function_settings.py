"""Each function is given only its own variables (infrastructure/constructs/functions.py): the
settings load without the others, and a use case names the variable it cannot do without."""

from __future__ import annotations

import pytest

from functions.settings import EnvVar, Settings


def test_the_webhooks_function_loads_its_settings_without_table_or_bucket() -> None:
    env = {EnvVar.WEBHOOK_QUEUE_URL: "https://sqs/1/q", EnvVar.WEBHOOK_SIGNING_SECRET_ARN: "arn:secret"}
    settings = Settings.from_env(env)
    assert settings.webhook_queue_url == "https://sqs/1/q" and settings.table_name == ""


def test_a_missing_variable_is_named() -> None:
    with pytest.raises(RuntimeError, match="TABLE_NAME is not set"):
        Settings.from_env({}).require("table_name")
    assert Settings.from_env({EnvVar.TABLE_NAME: "t"}).require("table_name") == "t"


def test_owner_session_roles_are_read_as_a_list() -> None:
    assert Settings.from_env({EnvVar.OWNER_SESSION_ROLES: "Team, Ops"}).owner_session_roles == ("Team", "Ops")

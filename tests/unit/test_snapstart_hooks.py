"""The API function's SnapStart hooks: model parsing before the snapshot, a reseed after restore."""

from __future__ import annotations

import random
import sys
import types
from typing import Any

import pytest


def test_hooks_register_with_lambdas_snapshot_module(monkeypatch: pytest.MonkeyPatch) -> None:
    from functions.adapters.aws_clients import preload_service_models
    from functions.api.handler import register_snapstart_hooks

    registered: dict[str, Any] = {}
    fake = types.ModuleType("snapshot_restore_py")
    fake.register_before_snapshot = lambda f, *a, **k: registered.setdefault("before", f)  # type: ignore[attr-defined]
    fake.register_after_restore = lambda f, *a, **k: registered.setdefault("after", f)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "snapshot_restore_py", fake)
    assert register_snapstart_hooks() is True
    assert registered == {"before": preload_service_models, "after": random.seed}


def test_outside_lambda_there_is_nothing_to_register(monkeypatch: pytest.MonkeyPatch) -> None:
    from functions.api.handler import register_snapstart_hooks

    monkeypatch.setitem(sys.modules, "snapshot_restore_py", None)  # import fails
    assert register_snapstart_hooks() is False


def test_preloading_parses_every_api_service_without_credentials_or_network(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import boto3

    from functions.adapters.aws_clients import API_SERVICES, preload_service_models

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)  # a fresh default session
    preload_service_models()
    session = boto3._get_default_session()._session
    assert {session.get_service_model(s).service_name for s in API_SERVICES} == set(API_SERVICES)

"""Each function, cold, with exactly the environment the template gives it, against the emulator:
every AWS call its code makes must be allowed by its own role in the same template.

This is where a function reading something only another function may read shows up (the
page-token secret read by the events, reconciler and tasks functions on their first call): a
cold start per function, as in Lambda, instead of one warm context shared by every handler as in
the other in-process tests. Those tests check their calls too (``tests/conftest.py``,
``check_function_permissions``); this one adds the per-function environment and cold start.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

from functions.settings import EnvVar
from tests.conftest import LambdaContextStub
from tests.iam_check import FUNCTION_PACKAGES, RecordedCall, RolePolicies, denied_calls, handler_of, recording
from tests.integration.conftest import ApiCaller, sagemaker_event
from tests.integration.workflow import checkpoint_bytes, ready_inputs, training_body, upload_model


@dataclass
class ColdStarts:
    """``run(function, body)``: ``body`` as a cold start of ``function``; ``env``: every value given."""

    run: Callable[[str, Callable[[], Any]], list[RecordedCall]]
    env: dict[str, str]


def _reset_warm_state() -> None:
    """What a Lambda execution environment keeps between invocations: gone on a cold start."""
    from aws_lambda_powertools.utilities.parameters import clear_caches

    from functions.api.idempotency import forget_warm_state
    from functions.services.context import service_context
    from functions.webhooks.handler import _settings_and_secret

    service_context.cache_clear()
    _settings_and_secret.cache_clear()
    forget_warm_state()
    clear_caches()


def _secret(value: str) -> str:
    return str(
        boto3.client("secretsmanager").create_secret(Name=f"iam-{uuid.uuid4().hex}", SecretString=value)[
            "ARN"
        ]
    )


def _fresh_table() -> str:
    from functions.adapters.table_schema import create_table_kwargs

    name = f"iam-{uuid.uuid4().hex[:12]}"
    boto3.client("dynamodb").create_table(**create_table_kwargs(name))
    return name


@pytest.fixture
def cold(
    aws_emulator: str, template_json: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> Iterator[ColdStarts]:
    """Cold starts with each function's template environment, resources mapped to the emulator's."""

    emulator_values = {
        **{name: os.environ[name] for name in EnvVar if name in os.environ},
        # A table of its own: the reconciler acts on every active job in its table, and jobs other
        # tests left in the shared one carry the tests' job-name prefix, not this template's.
        EnvVar.TABLE_NAME: _fresh_table(),
        EnvVar.PAGE_TOKEN_SECRET_ARN: _secret("page-secret"),
        EnvVar.WEBHOOK_SIGNING_SECRET_ARN: _secret("webhook-secret"),
        EnvVar.TASKS_FUNCTION_NAME: "lora-tasks",
    }
    functions = {
        r["Properties"]["Handler"]: r["Properties"]
        for r in template_json["Resources"].values()
        if r["Type"] == "AWS::Lambda::Function"
    }

    given: dict[str, str] = {}

    def run(function: str, body: Callable[[], Any]) -> list[RecordedCall]:
        template_env = functions[handler_of(function)]["Environment"]["Variables"]
        for name in EnvVar:  # nothing but what the template gives this function
            monkeypatch.delenv(name, raising=False)
        for name, value in template_env.items():
            if name.startswith("POWERTOOLS_"):
                continue
            given[name] = value if isinstance(value, str) else emulator_values[name]
            monkeypatch.setenv(name, given[name])
        _reset_warm_state()
        with recording() as recorder:
            body()
        return [c for c in recorder.calls if c.function == function]

    yield ColdStarts(run, given)
    _reset_warm_state()


def test_every_function_cold_calls_only_what_its_role_allows(
    cold: ColdStarts, template_json: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from functions.events.handler import lambda_handler as events_handler
    from functions.reconciler.handler import lambda_handler as reconciler_handler
    from functions.services.context import service_context
    from functions.tasks.handler import lambda_handler as tasks_handler
    from functions.webhooks.handler import lambda_handler as webhooks_handler

    api = ApiCaller(f"arn:aws:iam::123456789012:user/iam-{uuid.uuid4().hex[:10]}")
    dispatched: list[Any] = []
    job: dict[str, Any] = {}
    calls: dict[str, list[RecordedCall]] = {}

    def api_session() -> None:
        model_id, dataset_id = ready_inputs(api)
        status, created = api("POST", "/trainings", training_body(model_id, dataset_id))
        assert status == 201, created
        job.update(created)
        assert api("GET", f"/trainings/{created['id']}/logs")[0] == 200  # SageMaker's log group
        upload_model(api, checkpoint_bytes())  # a second model, so that a page of one continues
        assert api("GET", "/models", query={"limit": "1"})[1]["next_token"]  # signs a page token
        # A crop is handed to the tasks function (captured here; run below as that function).
        monkeypatch.setattr(type(service_context().tasks), "dispatch", lambda _self, t: dispatched.append(t))
        status, crop = api("POST", f"/datasets/{dataset_id}/crop", {"name": "cats 64", "width": 64})
        assert status == 202, crop

    calls["api"] = cold.run("api", api_session)
    name = job["sagemaker_job_name"]
    calls["events"] = cold.run(
        "events", lambda: events_handler(sagemaker_event(name, "InProgress", "Training"), LambdaContextStub())
    )
    calls["reconciler"] = cold.run("reconciler", lambda: reconciler_handler({}, LambdaContextStub()))
    calls["tasks"] = cold.run(
        "tasks", lambda: tasks_handler(dispatched[0].model_dump(mode="json"), LambdaContextStub())
    )
    malformed = {"Records": [{"messageId": "m1", "body": "not json", "attributes": {}}]}
    calls["webhooks"] = cold.run("webhooks", lambda: webhooks_handler(malformed, LambdaContextStub()))

    assert set(calls) == set(FUNCTION_PACKAGES)
    for function, made in calls.items():
        assert made, f"{function} made no AWS call: the scenario did not exercise it"
    api_operations = {c.operation for c in calls["api"]}
    assert {"CreateTrainingJob", "DescribeLogStreams", "GetSecretValue", "PutEvents"} <= api_operations
    every_call = [c for made in calls.values() for c in made]
    denied = denied_calls(every_call, RolePolicies(template_json, cold.env))
    assert denied == [], "\n".join(denied)
    secret_readers = {f for f, made in calls.items() for c in made if c.operation == "GetSecretValue"}
    assert secret_readers == {"api", "webhooks"}, "each reads its own secret, nobody else any"

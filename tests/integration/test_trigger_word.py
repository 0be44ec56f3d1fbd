"""``trigger_word`` on POST /trainings, on the emulator: validated, stored, shown, sent to the container."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.conftest import ApiCaller
from tests.integration.workflow import job_spec_of, ready_inputs, training_body


def _capture_create(sagemaker_stub: Any) -> dict[str, Any]:
    captured: dict[str, Any] = {}
    sagemaker_stub.client.meta.events.register(
        "provide-client-params.sagemaker.CreateTrainingJob", lambda params, **_: captured.update(params)
    )
    sagemaker_stub.add_response(
        "create_training_job", {"TrainingJobArn": "arn:aws:sagemaker:us-east-1:1:training-job/x"}
    )
    return captured


def test_trigger_word_reaches_the_view_the_config_and_the_container(
    api: ApiCaller, sagemaker_stub: Any
) -> None:
    captured = _capture_create(sagemaker_stub)
    model_id, dataset_id = ready_inputs(api)
    body = training_body(model_id, dataset_id, trigger_word="  sks cat ")
    body["config"] = {**body["config"], "shuffle_caption": True}

    status, job = api("POST", "/trainings", body)

    assert status == 201 and job["trigger_word"] == "sks cat", job
    assert job["config"]["keep_tokens"] == 1  # keeps the trigger first when sd-scripts shuffles
    channels = {c["ChannelName"]: c["DataSource"]["S3DataSource"] for c in captured["InputDataConfig"]}
    spec = job_spec_of(channels["job"]["S3Uri"])
    assert spec.trigger_word == "sks cat" and spec.config["keep_tokens"] == 1
    status, again = api("GET", f"/trainings/{job['id']}")
    assert status == 200 and again["trigger_word"] == "sks cat"


def test_a_larger_keep_tokens_is_kept(api: ApiCaller, sagemaker_stub: Any) -> None:
    _capture_create(sagemaker_stub)
    model_id, dataset_id = ready_inputs(api)
    body = training_body(model_id, dataset_id, trigger_word="sks")
    body["config"] = {**body["config"], "keep_tokens": 3}

    status, job = api("POST", "/trainings", body)

    assert status == 201 and job["config"]["keep_tokens"] == 3


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("sks, cat", "must not contain a comma"),
        ("sks\ncat", "must not contain a comma|line breaks"),
        (",,,", "must not contain a comma"),
        ("   ", "must not be blank"),
        ("x" * 65, "at most 64 characters"),
    ],
)
def test_bad_trigger_words_are_refused_naming_the_field(api: ApiCaller, value: str, problem: str) -> None:
    model_id, dataset_id = ready_inputs(api)

    status, body = api("POST", "/trainings", training_body(model_id, dataset_id, trigger_word=value))

    assert status == 400, body
    details = body["error"]["details"]
    assert [d["field"] for d in details] == ["trigger_word"], details
    assert any(part in details[0]["problem"] for part in problem.split("|")), details


def test_metadata_trigger_phrase_is_owned_by_the_service(api: ApiCaller) -> None:
    model_id, dataset_id = ready_inputs(api)
    body = training_body(model_id, dataset_id)
    body["config"] = {**body["config"], "metadata_trigger_phrase": "sks"}

    status, answer = api("POST", "/trainings", body)

    assert status == 400 and "trigger_word" in answer["error"]["details"][0]["problem"], answer

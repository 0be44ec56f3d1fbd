"""POST /datasets/{id}/captions on the emulator: validation, the new dataset and its launch, the
job's end through the events function (and the reconciler), the caption cache, and training's
refusal of a dataset with uncaptioned images."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from functions.adapters.training_launcher import TrainingJobState
from functions.domain.captioning import CAPTIONING_INSTANCE_TYPE, CaptioningJobSpec, caption_cache_key
from functions.domain.storage_layout import caption_cache_prefix, training_model_output_prefix
from functions.services.context import service_context
from functions.services.reconciliation import reconcile
from tests.integration.conftest import BUCKET, ApiCaller, sagemaker_event, send_event
from tests.integration.workflow import png_bytes, ready_inputs, training_body, upload_dataset

TRIGGER = "sks cat"


def uncaptioned() -> dict[str, bytes]:
    return {"10_cat/a.png": png_bytes(), "10_cat/b.png": png_bytes((1, 2, 3))}


def _capture_creates(sagemaker_stub: Any, count: int = 1) -> list[dict[str, Any]]:
    captured: list[dict[str, Any]] = []
    sagemaker_stub.client.meta.events.register(
        "provide-client-params.sagemaker.CreateTrainingJob", lambda params, **_: captured.append(params)
    )
    for _ in range(count):
        sagemaker_stub.add_response(
            "create_training_job", {"TrainingJobArn": "arn:aws:sagemaker:us-east-1:1:training-job/x"}
        )
    return captured


def _channels(request: dict[str, Any]) -> dict[str, str]:
    return {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in request["InputDataConfig"]}


def _spec(uri: str) -> CaptioningJobSpec:
    data = service_context().storage.read_bytes(uri.removeprefix(f"s3://{BUCKET}/") + "job.json")
    assert data is not None
    return CaptioningJobSpec.model_validate_json(data)


def _complete_job(owner: str, dataset: dict[str, Any], *, cache_hits: int = 0) -> None:
    """Write what the container leaves in /opt/ml/model (as SageMaker uploads it), then send the
    Completed event."""
    job = dataset["captions"]
    output = training_model_output_prefix(owner, dataset["id"], job["sagemaker_job_name"])
    s3 = boto3.client("s3")
    for name, color in (("a", (200, 30, 30)), ("b", (1, 2, 3))):
        s3.put_object(Bucket=BUCKET, Key=f"{output}dataset/10_cat/{name}.png", Body=png_bytes(color))
        s3.put_object(
            Bucket=BUCKET, Key=f"{output}dataset/10_cat/{name}.txt", Body=f"{TRIGGER}, 1girl".encode()
        )
    if not cache_hits:
        key = caption_cache_key("a" * 64, "wd14@rev")
        s3.put_object(Bucket=BUCKET, Key=f"{output}cache/{key}", Body=b"1girl")
    summary = {
        "job_id": dataset["id"],
        "images": 2,
        "captioned": 2,
        "kept": 0,
        "cache_hits": cache_hits,
        "model_runs": 2 - cache_hits,
        "models": ["wd14@rev"],
        "failures": [],
        "duration_seconds": 1.5,
    }
    s3.put_object(Bucket=BUCKET, Key=f"{output}captions-summary.json", Body=json.dumps(summary).encode())
    send_event(sagemaker_event(job["sagemaker_job_name"], "Completed"))


def test_an_uncaptioned_dataset_is_ready_for_captions_but_refused_by_training(api: ApiCaller) -> None:
    model_id, _ = ready_inputs(api)
    dataset = upload_dataset(api, uncaptioned())
    assert dataset["status"] == "ready", dataset
    assert dataset["manifest"]["missing_captions"] == 2 and dataset["manifest"]["problems"] == []

    status, body = api("POST", "/trainings", training_body(model_id, dataset["id"]))

    assert status == 400, body
    (detail,) = body["error"]["details"]
    assert detail["field"] == "dataset_id" and dataset["id"] in detail["problem"]
    assert "without a caption" in detail["problem"]


def test_captions_job_makes_a_new_dataset_and_fills_the_cache(api: ApiCaller, sagemaker_stub: Any) -> None:
    source = upload_dataset(api, uncaptioned())
    creates = _capture_creates(sagemaker_stub, count=2)
    body = {"name": "cats captioned", "trigger_word": f" {TRIGGER} ", "tagger": {"general_threshold": 0.5}}

    status, made = api("POST", f"/datasets/{source['id']}/captions", body)

    assert status == 202, made
    assert made["id"] != source["id"] and made["status"] == "processing"
    job = made["captions"]
    assert job["source_dataset_id"] == source["id"] and job["trigger_word"] == TRIGGER
    assert job["plan"]["instance_type"] == CAPTIONING_INSTANCE_TYPE and job["plan"]["images"] == 2
    assert job["plan"]["estimated_cost_usd"] > 0
    request = creates[0]
    assert request["TrainingJobName"] == job["sagemaker_job_name"]
    assert request["ResourceConfig"]["InstanceType"] == CAPTIONING_INSTANCE_TYPE
    channels = _channels(request)
    assert set(channels) == {"dataset", "job"}  # no cache yet: an empty channel would fail the job
    assert channels["dataset"].endswith(f"/{source['id']}/files/")
    spec = _spec(channels["job"])
    assert spec.kind == "captioning" and spec.trigger_word == TRIGGER and spec.tagger.general_threshold == 0.5

    _complete_job(api.owner, made)

    status, done = api("GET", f"/datasets/{made['id']}")
    assert status == 200 and done["status"] == "ready", done
    assert done["manifest"]["image_count"] == 2 and done["manifest"]["missing_captions"] == 0
    assert done["captions"]["state"] == "Completed"
    assert done["captions"]["summary"]["model_runs"] == 2
    status, page = api("GET", f"/datasets/{made['id']}/files", query={"with_captions": "true"})
    assert status == 200 and all(f["caption"].startswith(TRIGGER) for f in page["items"]), page
    original = api("GET", f"/datasets/{source['id']}")[1]
    assert original["manifest"]["missing_captions"] == 2 and original["updated_at"] == source["updated_at"]
    cached = service_context().storage.list_objects(caption_cache_prefix(api.owner))
    assert len(cached) == 1

    send_event(sagemaker_event(made["captions"]["sagemaker_job_name"], "Completed"))  # a duplicate
    assert api("GET", f"/datasets/{made['id']}")[1] == done

    status, second = api(
        "POST", f"/datasets/{source['id']}/captions", {"name": "again", "trigger_word": TRIGGER}
    )
    assert status == 202, second
    assert "cache" in _channels(creates[1])  # the owner's cache goes in now
    _complete_job(api.owner, second, cache_hits=2)
    summary = api("GET", f"/datasets/{second['id']}")[1]["captions"]["summary"]
    assert summary["cache_hits"] == 2 and summary["model_runs"] == 0


def test_a_failed_captions_job_fails_the_new_dataset_with_the_reason(
    api: ApiCaller, sagemaker_stub: Any
) -> None:
    source = upload_dataset(api, uncaptioned())
    _capture_creates(sagemaker_stub)
    made = api("POST", f"/datasets/{source['id']}/captions", {"name": "x"})[1]

    send_event(
        sagemaker_event(made["captions"]["sagemaker_job_name"], "Failed", failure="tagger not installed")
    )

    failed = api("GET", f"/datasets/{made['id']}")[1]
    assert failed["status"] == "failed" and "tagger not installed" in failed["failure_reason"]
    assert api("GET", f"/datasets/{source['id']}")[1]["status"] == "ready"


def test_the_reconciler_finishes_a_captions_job_whose_event_was_lost(
    api: ApiCaller, sagemaker_stub: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = upload_dataset(api, uncaptioned())
    _capture_creates(sagemaker_stub)
    made = api("POST", f"/datasets/{source['id']}/captions", {"name": "x", "trigger_word": TRIGGER})[1]
    name = made["captions"]["sagemaker_job_name"]
    job = made["captions"]
    output = training_model_output_prefix(api.owner, made["id"], job["sagemaker_job_name"])
    boto3.client("s3").put_object(Bucket=BUCKET, Key=f"{output}dataset/10_cat/a.png", Body=png_bytes())
    boto3.client("s3").put_object(Bucket=BUCKET, Key=f"{output}dataset/10_cat/a.txt", Body=b"sks cat, x")
    summary = {"job_id": made["id"], "images": 1, "captioned": 1, "kept": 0, "cache_hits": 0}
    summary |= {"model_runs": 1, "duration_seconds": 1.0}
    boto3.client("s3").put_object(
        Bucket=BUCKET, Key=f"{output}captions-summary.json", Body=json.dumps(summary)
    )
    ctx = service_context()
    states = {name: TrainingJobState(name, "Completed", "Completed", None)}
    monkeypatch.setattr(ctx.launcher, "describe", lambda n: states.get(n))

    counts = reconcile(ctx)

    assert counts["captions-repaired"] >= 1
    assert api("GET", f"/datasets/{made['id']}")[1]["status"] == "ready"


def test_a_captions_job_that_never_reached_sagemaker_is_failed_by_the_reconciler(
    api: ApiCaller, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = upload_dataset(api, uncaptioned())
    ctx = service_context()

    def lambda_timeout(*args: Any, **kw: Any) -> None:
        raise TimeoutError("Task timed out after 30.00 seconds")

    monkeypatch.setattr(ctx.launcher, "create", lambda_timeout)
    assert api("POST", f"/datasets/{source['id']}/captions", {"name": "x"})[0] == 500
    monkeypatch.setattr(ctx.launcher, "describe", lambda n: None)
    (made,) = [d for d in api("GET", "/datasets")[1]["items"] if d["id"] != source["id"]]
    reconcile(ctx)  # too recent: it may still be launching
    assert api("GET", f"/datasets/{made['id']}")[1]["status"] == "processing"
    reconcile(ctx, now=datetime.now(UTC) + timedelta(minutes=10))
    failed = api("GET", f"/datasets/{made['id']}")[1]
    assert failed["status"] == "failed" and "never reached SageMaker" in failed["failure_reason"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x", "use_tagger": False, "use_captioner": False}, "use_tagger"),
        ({"name": "x", "trigger_word": "sks, cat"}, "trigger_word"),
        ({"name": "x", "trigger_word": "   "}, "trigger_word"),
        ({"name": "x", "mode": "sideways"}, "mode"),
        ({"name": "x", "tagger": {"general_threshold": 0}}, "tagger.general_threshold"),
        ({"name": "x", "max_caption_tokens": 500}, "max_caption_tokens"),
        ({"name": "x", "colour": "red"}, "colour"),
        ({"name": "x", "tagger": {"treshold": 0.5}}, "tagger.treshold"),
    ],
)
def test_bad_requests_are_refused_naming_the_field(api: ApiCaller, body: dict[str, Any], field: str) -> None:
    source = upload_dataset(api, uncaptioned())

    status, answer = api("POST", f"/datasets/{source['id']}/captions", body)

    assert status == 400, answer
    fields = [d["field"] for d in answer["error"]["details"]]
    assert field in fields, answer
    assert len(api("GET", "/datasets")[1]["items"]) == 1  # nothing was recorded


def test_only_a_ready_dataset_of_yours_can_be_captioned(api: ApiCaller, other_api: ApiCaller) -> None:
    source = upload_dataset(api, {"10_cat/a.png": b"not a png at all"})
    assert source["status"] == "invalid"
    assert api("POST", f"/datasets/{source['id']}/captions", {"name": "x"})[0] == 409
    assert other_api("POST", f"/datasets/{source['id']}/captions", {"name": "x"})[0] == 404


def test_deleting_a_dataset_being_captioned_stops_its_job(api: ApiCaller, sagemaker_stub: Any) -> None:
    source = upload_dataset(api, uncaptioned())
    _capture_creates(sagemaker_stub)
    made = api("POST", f"/datasets/{source['id']}/captions", {"name": "x"})[1]
    name = made["captions"]["sagemaker_job_name"]
    sagemaker_stub.add_response("stop_training_job", {}, {"TrainingJobName": name})

    assert api("DELETE", f"/datasets/{made['id']}")[0] == 204

    sagemaker_stub.assert_no_pending_responses()
    assert send_event(sagemaker_event(name, "Stopped"))["applied"] is None  # ignored: nothing left
    assert api("GET", f"/datasets/{source['id']}")[1]["status"] == "ready"

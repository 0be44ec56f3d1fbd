"""The whole workflow through the real handlers: upload, validate, train, events, LoRA, delete."""

from __future__ import annotations

import json
from typing import Any

import boto3
import httpx

from functions.domain.storage_layout import (
    model_object_key,
    training_output_prefix,
    training_prefix,
    training_progress_key,
)
from tests.integration.conftest import BUCKET, JOB_PREFIX, ApiCaller, sagemaker_event, send_event
from tests.integration.workflow import (
    checkpoint_bytes,
    put_lora_output,
    ready_inputs,
    safetensors_bytes,
    training_body,
    upload_model,
)


def test_model_upload_is_multipart_presigned_and_verified(api: ApiCaller) -> None:
    content = checkpoint_bytes(extra_bytes=1000)
    model = upload_model(api, content)
    assert model["status"] == "ready" and model["size_bytes"] == len(content)
    status, fetched = api("GET", f"/models/{model['id']}")
    assert status == 200
    assert httpx.get(fetched["download_url"]).content == content


def test_full_training_workflow_to_a_registered_lora(api: ApiCaller) -> None:
    model_id, dataset_id = ready_inputs(api)
    status, dataset = api("GET", f"/datasets/{dataset_id}")
    assert dataset["manifest"]["image_count"] == 3 and dataset["manifest"]["captioned_count"] == 3
    assert {c["folder"]: c["repeats"] for c in dataset["manifest"]["concepts"]} == {"10_cat": 10, "5_dog": 5}

    status, job = api("POST", "/trainings", training_body(model_id, dataset_id))
    assert status == 201, job
    assert job["status"] == "STARTING"
    assert job["sagemaker_job_name"] == f"{JOB_PREFIX}-{job['id']}"
    assert job["plan"]["images_per_epoch"] == 25 and job["plan"]["total_steps"] == 50
    assert job["plan"]["estimated_cost_usd"] > job["plan"]["estimated_spot_cost_usd"] > 0

    name = job["sagemaker_job_name"]
    send_event(sagemaker_event(name, "InProgress", "Training"))
    progress = {
        "phase": "training",
        "step": 7,
        "total_steps": 50,
        "epoch": 1,
        "total_epochs": 2,
        "loss": 0.2,
        "eta_seconds": 40,
        "updated_at": "2026-11-25T00:00:00Z",
    }
    boto3.client("s3").put_object(
        Bucket=BUCKET, Key=training_progress_key(api.owner, job["id"]), Body=json.dumps(progress)
    )
    status, running = api("GET", f"/trainings/{job['id']}")
    assert running["status"] == "TRAINING"
    assert running["progress"]["step"] == 7 and running["progress"]["loss"] == 0.2

    put_lora_output(job, safetensors_bytes(256), training_output_prefix(api.owner, job["id"]))
    send_event(sagemaker_event(name, "InProgress", "Uploading"))
    send_event(sagemaker_event(name, "Completed", "Completed"))
    status, done = api("GET", f"/trainings/{job['id']}")
    assert done["status"] == "COMPLETED"
    assert done["output"]["lora_model_id"] == job["id"]
    assert done["output"]["final_loss"] == 0.12
    assert [h["status"] for h in done["history"]] == ["STARTING", "TRAINING", "UPLOADING", "COMPLETED"]

    status, lora = api("GET", f"/models/{done['output']['lora_model_id']}")
    assert lora["kind"] == "lora" and lora["status"] == "ready" and lora["fm_type"] == "sd15"
    assert httpx.get(lora["download_url"]).content == safetensors_bytes(256)
    status, loras = api("GET", "/models", query={"kind": "lora"})
    assert [m["id"] for m in loras["items"]] == [job["id"]]

    # Deleting the job keeps its LoRA unless asked.
    assert api("DELETE", f"/trainings/{job['id']}")[0] == 204
    assert api("GET", f"/models/{job['id']}")[0] == 200
    assert api("GET", f"/trainings/{job['id']}")[0] == 404


def test_failed_job_records_sagemaker_reason(api: ApiCaller) -> None:
    model_id, dataset_id = ready_inputs(api)
    _, job = api("POST", "/trainings", training_body(model_id, dataset_id))
    send_event(
        sagemaker_event(
            job["sagemaker_job_name"], "Failed", "Failed", "AlgorithmError: 10_cat/a.png is corrupt"
        )
    )
    _, failed = api("GET", f"/trainings/{job['id']}")
    assert failed["status"] == "FAILED"
    assert "10_cat/a.png is corrupt" in failed["failure_reason"]


def test_completed_job_without_a_valid_lora_fails(api: ApiCaller) -> None:
    model_id, dataset_id = ready_inputs(api)
    _, job = api("POST", "/trainings", training_body(model_id, dataset_id))
    put_lora_output(job, b"not a safetensors file at all", training_output_prefix(api.owner, job["id"]))
    send_event(sagemaker_event(job["sagemaker_job_name"], "Completed"))
    _, ended = api("GET", f"/trainings/{job['id']}")
    assert ended["status"] == "FAILED" and "LoRA is unusable" in ended["failure_reason"]
    assert api("GET", f"/models/{job['id']}")[0] == 404


def test_stop_then_stopped(api: ApiCaller, sagemaker_stub: Any) -> None:
    model_id, dataset_id = ready_inputs(api)
    sagemaker_stub.add_response(
        "create_training_job", {"TrainingJobArn": "arn:aws:sagemaker:us-east-1:1:training-job/x"}
    )
    _, job = api("POST", "/trainings", training_body(model_id, dataset_id))
    sagemaker_stub.add_response("stop_training_job", {}, {"TrainingJobName": job["sagemaker_job_name"]})
    status, stopping = api("POST", f"/trainings/{job['id']}/stop")
    assert status == 200 and stopping["status"] == "STOPPING"
    send_event(sagemaker_event(job["sagemaker_job_name"], "Stopped"))
    _, stopped = api("GET", f"/trainings/{job['id']}")
    assert stopped["status"] == "STOPPED"
    status, error = api("POST", f"/trainings/{job['id']}/stop")
    assert status == 409 and error["error"]["code"] == "CONFLICT"


def test_model_and_dataset_in_use_cannot_be_deleted(api: ApiCaller) -> None:
    model_id, dataset_id = ready_inputs(api)
    _, job = api("POST", "/trainings", training_body(model_id, dataset_id))
    assert api("DELETE", f"/models/{model_id}")[0] == 409
    assert api("DELETE", f"/datasets/{dataset_id}")[0] == 409
    assert api("DELETE", f"/trainings/{job['id']}")[0] == 409  # not ended yet
    send_event(sagemaker_event(job["sagemaker_job_name"], "Failed", failure="boom"))
    assert api("DELETE", f"/datasets/{dataset_id}")[0] == 204
    assert api("DELETE", f"/models/{model_id}")[0] == 204
    assert api("GET", f"/models/{model_id}")[0] == 404


def _completed_job(api: ApiCaller) -> dict[str, Any]:
    model_id, dataset_id = ready_inputs(api)
    _, job = api("POST", "/trainings", training_body(model_id, dataset_id))
    put_lora_output(job, safetensors_bytes(128), training_output_prefix(api.owner, job["id"]))
    send_event(sagemaker_event(job["sagemaker_job_name"], "Completed", "Completed"))
    _, done = api("GET", f"/trainings/{job['id']}")
    assert done["status"] == "COMPLETED", done
    return dict(done)


def test_deleting_a_job_with_delete_lora_removes_the_lora_and_its_object(api: ApiCaller) -> None:
    done = _completed_job(api)
    lora_id = done["output"]["lora_model_id"]
    _, lora = api("GET", f"/models/{lora_id}")
    assert httpx.get(lora["download_url"]).status_code == 200

    assert api("DELETE", f"/trainings/{done['id']}", query={"delete_lora": "true"})[0] == 204
    assert api("GET", f"/trainings/{done['id']}")[0] == 404
    assert api("GET", f"/models/{lora_id}")[0] == 404
    s3 = boto3.client("s3")
    for prefix in (model_object_key(api.owner, lora_id, ""), training_prefix(api.owner, done["id"])):
        assert s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("KeyCount", 0) == 0, prefix


def test_a_job_start_lists_every_problem_with_its_field(api: ApiCaller) -> None:
    lora = upload_model(api, safetensors_bytes(), kind="lora")
    _, dataset_id = ready_inputs(api)
    body = training_body(
        lora["id"],
        dataset_id,
        fm_type="sdxl",
        instance_type="ml.g4dn.xlarge",
        max_runtime_seconds=27 * 24 * 3600,
        config={"learning_rate": "fast", "netwrok_dim": 8},
    )
    status, error = api("POST", "/trainings", body)
    assert status == 400, error
    fields = {d["field"] for d in error["error"]["details"]}
    assert {"instance_type", "base_model_id", "max_runtime_seconds"} <= fields
    assert any(f.startswith("config.") or f == "config" for f in fields), fields
    assert api("GET", "/trainings")[1]["items"] == []  # nothing was recorded or launched

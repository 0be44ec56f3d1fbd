"""Per-epoch LoRA versions and sample images through the real handlers, against the emulator."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import boto3
import httpx
import pytest

from functions.domain.storage_layout import model_object_key, training_published_key
from functions.domain.training_contract import (
    published_epoch_lora_path,
    published_sample_path,
)
from tests.integration.conftest import BUCKET, ApiCaller, sagemaker_event, send_event
from tests.integration.workflow import job_spec_of, png_bytes, ready_inputs, safetensors_bytes, training_body

PROMPTS = [
    {"prompt": "a photo of a cat", "width": 512, "height": 512, "steps": 2, "seed": 1},
    {"prompt": "a cat on a sofa", "negative_prompt": "blurry"},
]
EPOCHS_CONFIG = {"max_train_epochs": 3, "save_every_n_epochs": 1, "network_dim": 8}


def _start(api: ApiCaller, **extra: Any) -> dict[str, Any]:
    model_id, dataset_id = ready_inputs(api)
    body = training_body(model_id, dataset_id, config=EPOCHS_CONFIG, sample_prompts=PROMPTS, **extra)
    status, job = api("POST", "/trainings", body)
    assert status == 201, job
    return dict(job)


def _publish(
    api: ApiCaller, job: dict[str, Any], epoch_files: dict[int, bytes], samples: dict[tuple[int, int], bytes]
) -> None:
    """What SageMaker uploads from /opt/ml/model for a job that saved epochs and rendered samples."""
    s3, name = boto3.client("s3"), job["sagemaker_job_name"]

    def put(relative: str, body: bytes) -> None:
        s3.put_object(
            Bucket=BUCKET, Key=training_published_key(api.owner, job["id"], name, relative), Body=body
        )

    final = safetensors_bytes(300)
    put(f"{name}.safetensors", final)
    for epoch, body in epoch_files.items():
        put(published_epoch_lora_path(name, epoch), body)
    for (epoch, index), body in samples.items():
        put(published_sample_path(name, epoch, index), body)
    summary = {
        "job_id": job["id"],
        "engine": "diffusers",
        "fm_type": "sd15",
        "lora_filename": f"{name}.safetensors",
        "lora_sha256": hashlib.sha256(final).hexdigest(),
        "lora_size_bytes": len(final),
        "steps": 75,
        "epochs": 3,
        "final_loss": 0.1,
        "duration_seconds": 9.0,
        "training_seconds": 8.0,
        "epoch_loras": [
            {"epoch": e, "sha256": hashlib.sha256(b).hexdigest(), "size_bytes": len(b)}
            for e, b in epoch_files.items()
        ],
        "samples": [{"epoch": e, "prompt_index": i} for e, i in samples],
    }
    put("summary.json", json.dumps(summary).encode())
    send_event(sagemaker_event(name, "Completed", "Completed"))


def _all_samples(epochs: range) -> dict[tuple[int, int], bytes]:
    return {(e, i): png_bytes((e * 40, i * 90, 0)) for e in epochs for i in range(len(PROMPTS))}


def test_completion_registers_each_epoch_as_a_version_of_one_lora(api: ApiCaller) -> None:
    job = _start(api)
    epochs = {1: safetensors_bytes(100), 2: safetensors_bytes(200)}
    _publish(api, job, epochs, _all_samples(range(1, 4)))

    status, done = api("GET", f"/trainings/{job['id']}")
    assert status == 200 and done["status"] == "COMPLETED", done
    assert done["output"]["epochs"] == [1, 2, 3] and done["output"]["rejected_epochs"] == []
    samples = done["samples"]
    assert [(s["epoch"], s["prompt_index"]) for s in samples] == [(e, i) for e in (1, 2, 3) for i in (0, 1)]
    assert samples[1]["prompt"] == "a cat on a sofa"
    assert httpx.get(samples[5]["download_url"]).content == png_bytes((120, 90, 0))

    status, models = api("GET", "/models", query={"kind": "lora"})
    assert [m["id"] for m in models["items"]] == [job["id"]]  # one model, not one per epoch
    status, lora = api("GET", f"/models/{job['id']}")
    versions = lora["versions"]
    assert [(v["epoch"], v["is_default"]) for v in versions] == [(1, False), (2, False), (3, True)]
    assert versions[0]["size_bytes"] == len(epochs[1])
    assert versions[0]["sha256"] == hashlib.sha256(epochs[1]).hexdigest()
    assert httpx.get(versions[1]["download_url"]).content == epochs[2]
    assert httpx.get(lora["download_url"]).content == safetensors_bytes(300)  # the default: final
    status, epoch_one = api("GET", f"/models/{job['id']}", query={"epoch": "1"})
    assert httpx.get(epoch_one["download_url"]).content == epochs[1]
    status, error = api("GET", f"/models/{job['id']}", query={"epoch": "7"})
    assert status == 404 and error["error"]["details"][0]["field"] == "epoch"  # a version that does not exist
    assert "saved epochs: 1, 2, 3" in error["error"]["message"]


def test_a_corrupt_epoch_file_is_rejected_and_the_rest_is_kept(api: ApiCaller) -> None:
    job = _start(api)
    _publish(api, job, {1: b"definitely not safetensors", 2: safetensors_bytes(200)}, {})

    _, done = api("GET", f"/trainings/{job['id']}")
    assert done["status"] == "COMPLETED"
    assert done["output"]["epochs"] == [2, 3]
    [rejected] = done["output"]["rejected_epochs"]
    assert rejected["epoch"] == 1 and "safetensors header" in rejected["reason"]
    _, lora = api("GET", f"/models/{job['id']}")
    assert [v["epoch"] for v in lora["versions"]] == [2, 3]
    assert api("GET", f"/models/{job['id']}", query={"epoch": "1"})[0] == 404


def test_summary_cannot_register_epochs_the_job_did_not_save(api: ApiCaller) -> None:
    job = _start(api)
    name = job["sagemaker_job_name"]
    stray = training_published_key(api.owner, job["id"], name, published_epoch_lora_path(name, 9))
    boto3.client("s3").put_object(Bucket=BUCKET, Key=stray, Body=safetensors_bytes(10))
    _publish(api, job, {9: safetensors_bytes(10)}, {(1, 5): png_bytes(), (1, 0): b"GIF89a not a png"})

    _, done = api("GET", f"/trainings/{job['id']}")
    assert done["output"]["epochs"] == []  # only the final LoRA: no versions list
    assert done["output"]["rejected_epochs"][0]["epoch"] == 9
    assert done["samples"] == []  # prompt 5 does not exist; the other is no PNG


def test_versions_count_in_storage_and_are_deleted_with_the_model(api: ApiCaller) -> None:
    job = _start(api)
    _publish(api, job, {1: safetensors_bytes(100), 2: safetensors_bytes(200)}, {})
    s3 = boto3.client("s3")
    prefix = model_object_key(api.owner, job["id"], "")
    assert s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix)["KeyCount"] == 3

    assert api("DELETE", f"/models/{job['id']}")[0] == 204
    assert s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("KeyCount", 0) == 0


def test_another_caller_sees_neither_versions_nor_samples(api: ApiCaller, other_api: ApiCaller) -> None:
    job = _start(api)
    _publish(api, job, {1: safetensors_bytes(100), 2: safetensors_bytes(200)}, _all_samples(range(1, 2)))
    assert other_api("GET", f"/models/{job['id']}", query={"epoch": "1"})[0] == 404
    assert other_api("GET", f"/models/{job['id']}")[0] == 404
    assert other_api("GET", f"/trainings/{job['id']}")[0] == 404
    assert other_api("GET", "/models", query={"kind": "lora"})[1]["items"] == []


@pytest.mark.parametrize(
    ("prompts", "field"),
    [
        ([{"prompt": "a cat --w 4096"}], "sample_prompts[0].prompt"),
        ([{"prompt": "ok", "negative_prompt": "two\nlines"}], "sample_prompts[0].negative_prompt"),
        ([{"prompt": "ok", "width": 2048}], "sample_prompts[0].width"),
        ([{"prompt": "ok", "height": 500}], "sample_prompts[0].height"),
        ([{"prompt": "ok", "steps": 500}], "sample_prompts[0].steps"),
        ([{"prompt": "ok", "path": "/etc/passwd"}], "sample_prompts[0].path"),
        ([{"prompt": "ok"}] * 9, "sample_prompts"),
    ],
)
def test_bad_sample_prompts_are_refused_naming_the_field(
    api: ApiCaller, prompts: list[dict[str, Any]], field: str
) -> None:
    model_id, dataset_id = ready_inputs(api)
    body = training_body(model_id, dataset_id, sample_prompts=prompts)
    status, error = api("POST", "/trainings", body)
    assert status == 400, error
    assert field in {d["field"] for d in error["error"]["details"]}, error
    assert api("GET", "/trainings")[1]["items"] == []


def test_too_many_sample_images_are_refused_before_launch(api: ApiCaller) -> None:
    model_id, dataset_id = ready_inputs(api)
    config = {"max_train_epochs": 100, "save_every_n_epochs": 1}
    body = training_body(model_id, dataset_id, config=config, sample_prompts=PROMPTS * 2)
    status, error = api("POST", "/trainings", body)
    assert status == 400 and error["error"]["details"][0]["field"] == "sample_prompts", error


def test_sample_prompts_travel_to_the_container_as_one_hyperparameter(
    api: ApiCaller, sagemaker_stub: Any
) -> None:
    captured: dict[str, Any] = {}
    sagemaker_stub.client.meta.events.register(
        "provide-client-params.sagemaker.CreateTrainingJob", lambda params, **_: captured.update(params)
    )
    sagemaker_stub.add_response(
        "create_training_job", {"TrainingJobArn": "arn:aws:sagemaker:us-east-1:1:training-job/x"}
    )
    long_prompts = [{"prompt": "p" * 400, "negative_prompt": "n" * 400, "seed": 2**32 - 1}] * 2
    model_id, dataset_id = ready_inputs(api)
    body = training_body(model_id, dataset_id, config=EPOCHS_CONFIG, sample_prompts=long_prompts)
    status, job = api("POST", "/trainings", body)
    assert status == 201, job
    assert [{k: v for k, v in p.items() if v is not None} for p in job["sample_prompts"]] == long_prompts

    channels = {c["ChannelName"]: c["DataSource"]["S3DataSource"] for c in captured["InputDataConfig"]}
    parsed = job_spec_of(channels["job"]["S3Uri"])  # the job channel, not a 2,500-char hyperparameter
    assert [p.model_dump(exclude_none=True) for p in parsed.sample_prompts] == long_prompts

"""FLUX.1 base models made of components, through the API on the local emulator: each file is
uploaded once with its role and checked against its header, a training names its components,
and the launched job gets one input channel per component and their file names in job.json."""

from __future__ import annotations

from typing import Any

import httpx

from tests.integration.conftest import BUCKET, ApiCaller
from tests.integration.workflow import (
    good_dataset,
    job_spec_of,
    tensor_file,
    training_body,
    upload_dataset,
    upload_model,
)
from tests.unit.test_flow_checkpoints import clip, flux_ae, flux_transformer, t5

WIDTH = 8  # tiny widths: recognition goes by names and agreeing shapes, never by sizes


def _flux_files() -> dict[str, bytes]:
    return {
        "checkpoint": tensor_file(flux_transformer(WIDTH)),
        "ae": tensor_file(flux_ae()),
        "clip_l": tensor_file(clip(WIDTH, projection=False)),
        "t5xxl": tensor_file(t5(WIDTH)),
    }


def _upload_flux(api: ApiCaller) -> tuple[str, dict[str, str]]:
    files = _flux_files()
    base = upload_model(api, files.pop("checkpoint"), fm_type="flux1", filename="flux1-dev.safetensors")
    components = {
        role: upload_model(api, content, fm_type="flux1", component=role, filename=f"{role}.safetensors")
        for role, content in files.items()
    }
    assert all(m["status"] == "ready" and m["component"] == role for role, m in components.items())
    return base["id"], {role: m["id"] for role, m in components.items()}


def _register(api: ApiCaller, content: bytes, **fields: Any) -> tuple[int, Any]:
    body = {
        "name": "m",
        "fm_type": "flux1",
        "filename": "m.safetensors",
        "size_bytes": len(content),
        **fields,
    }
    status, created = api("POST", "/models", body)
    if status != 201:
        return status, created
    etag = httpx.put(created["upload"]["parts"][0]["url"], content=content).headers["ETag"]
    parts = {"parts": [{"part_number": 1, "etag": etag}]}
    return api("POST", f"/models/{created['model']['id']}/complete", parts)


def test_a_wrong_file_for_a_component_is_refused_and_discarded(api: ApiCaller) -> None:
    status, error = _register(api, tensor_file(clip(768, projection=False)), component="t5xxl")
    assert status == 400, error
    assert "not a T5-XXL text encoder: it is a CLIP-L text encoder" in error["error"]["message"]
    assert api("GET", "/models")[1]["items"] == []


def test_a_role_the_family_does_not_take_names_the_field(api: ApiCaller) -> None:
    status, error = _register(api, tensor_file(clip(1280, projection=True)), component="clip_g")
    assert status == 400 and error["error"]["details"][0]["field"] == "component"
    assert "FLUX.1 takes no clip_g component" in error["error"]["details"][0]["problem"]
    status, error = api(
        "POST",
        "/models",
        {"name": "m", "fm_type": "sd15", "filename": "m.safetensors", "size_bytes": 10, "component": "ae"},
    )
    assert status == 400 and error["error"]["details"][0]["field"] == "component"


def test_a_flux_training_without_its_components_lists_each_missing_one(api: ApiCaller) -> None:
    base_id, _ = _upload_flux(api)
    dataset = upload_dataset(api, good_dataset())
    status, error = api("POST", "/trainings", training_body(base_id, dataset["id"], fm_type="flux1"))
    assert status == 400, error
    fields = {d["field"] for d in error["error"]["details"]}
    assert fields == {"components.ae", "components.clip_l", "components.t5xxl"}


def test_a_flux_training_launches_with_one_channel_per_component(api: ApiCaller, sagemaker_stub: Any) -> None:
    base_id, components = _upload_flux(api)
    dataset = upload_dataset(api, good_dataset())
    captured: dict[str, Any] = {}
    sagemaker_stub.client.meta.events.register(
        "provide-client-params.sagemaker.CreateTrainingJob", lambda params, **_: captured.update(params)
    )
    sagemaker_stub.add_response(
        "create_training_job", {"TrainingJobArn": "arn:aws:sagemaker:us-east-1:1:training-job/x"}
    )
    body = training_body(base_id, dataset["id"], fm_type="flux1", components=components)
    status, job = api("POST", "/trainings", body)
    assert status == 201 and job["status"] == "STARTING", job
    assert job["components"] == components
    channels = {
        c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in captured["InputDataConfig"]
    }
    assert set(channels) == {"model", "dataset", "job", "ae", "clip_l", "t5xxl"}
    for role, model_id in components.items():
        assert channels[role].startswith(f"s3://{BUCKET}/models/") and channels[role].endswith(
            f"/{model_id}/"
        )
    spec = job_spec_of(channels["job"])
    assert {role.value: name for role, name in spec.component_filenames.items()} == {
        role: f"{role}.safetensors" for role in components
    }
    assert spec.config["timestep_sampling"] == "shift"  # FLUX.1's defaults from its guide
    # a component in use cannot be deleted under the job
    assert api("DELETE", f"/models/{components['t5xxl']}")[0] == 409


def test_an_instance_without_the_host_memory_is_refused_with_those_that_fit(api: ApiCaller) -> None:
    base_id, components = _upload_flux(api)
    dataset = upload_dataset(api, good_dataset())
    body = training_body(
        base_id, dataset["id"], fm_type="flux1", components=components, instance_type="ml.g5.xlarge"
    )
    status, error = api("POST", "/trainings", body)
    assert status == 400, error
    (detail,) = [d for d in error["error"]["details"] if d["field"] == "instance_type"]
    assert (
        "ml.g5.xlarge has 16 GiB of host memory" in detail["problem"] and "ml.g5.2xlarge" in detail["problem"]
    )

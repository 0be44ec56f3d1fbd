"""Steps of the user's workflow through the real handlers, with real presigned HTTP uploads."""

from __future__ import annotations

import io
import json
import struct
from typing import Any

import boto3
import httpx
from PIL import Image

from functions.domain.training_contract import JOB_SPEC_FILENAME, TrainingJobSpec
from functions.services.context import service_context
from tests.integration.conftest import BUCKET, ApiCaller


def safetensors_bytes(tensor_bytes: int = 64, metadata: dict[str, str] | None = None) -> bytes:
    """A valid safetensors file holding one uint8 tensor."""
    header: dict[str, Any] = {
        "w": {"dtype": "U8", "shape": [tensor_bytes], "data_offsets": [0, tensor_bytes]}
    }
    if metadata:
        header["__metadata__"] = metadata
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + bytes(tensor_bytes)


def png_bytes(color: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), color).save(buffer, format="PNG")
    return buffer.getvalue()


def upload_model(
    api: ApiCaller, content: bytes, fm_type: str = "sd15", kind: str = "checkpoint"
) -> dict[str, Any]:
    status, created = api(
        "POST",
        "/models",
        {
            "name": "base",
            "kind": kind,
            "fm_type": fm_type,
            "filename": "base.safetensors",
            "size_bytes": len(content),
        },
    )
    assert status == 201, created
    upload = created["upload"]
    parts = []
    for part in upload["parts"]:
        start = (part["part_number"] - 1) * upload["part_size"]
        response = httpx.put(part["url"], content=content[start : start + upload["part_size"]])
        assert response.status_code == 200, response.text
        parts.append({"part_number": part["part_number"], "etag": response.headers["ETag"]})
    status, model = api("POST", f"/models/{created['model']['id']}/complete", {"parts": parts})
    assert status == 200, model
    return dict(model)


def declare_dataset(api: ApiCaller, files: dict[str, bytes]) -> tuple[int, dict[str, Any]]:
    return api(
        "POST",
        "/datasets",
        {"name": "cats", "files": [{"path": p, "size_bytes": len(b)} for p, b in files.items()]},
    )


def upload_dataset(api: ApiCaller, files: dict[str, bytes]) -> dict[str, Any]:
    status, created = declare_dataset(api, files)
    assert status == 201, created
    for upload in created["uploads"]:
        response = httpx.put(upload["url"], content=files[upload["path"]], headers=upload["headers"])
        assert response.status_code == 200, response.text
    status, dataset = api("POST", f"/datasets/{created['dataset']['id']}/complete")
    assert status == 200, dataset
    return dict(dataset)


def good_dataset() -> dict[str, bytes]:
    return {
        "10_cat/a.png": png_bytes(),
        "10_cat/a.txt": b"a photo of a cat",
        "10_cat/b.png": png_bytes((1, 2, 3)),
        "10_cat/b.txt": b"a cat, sitting",
        "5_dog/c.png": png_bytes((9, 9, 9)),
        "5_dog/c.txt": b"a dog",
    }


def ready_inputs(api: ApiCaller, fm_type: str = "sd15") -> tuple[str, str]:
    model = upload_model(api, safetensors_bytes(), fm_type=fm_type)
    dataset = upload_dataset(api, good_dataset())
    return model["id"], dataset["id"]


def training_body(model_id: str, dataset_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "fm_type": "sd15",
        "base_model_id": model_id,
        "dataset_id": dataset_id,
        "instance_type": "ml.g5.2xlarge",
        "config": {"max_train_epochs": 2, "network_dim": 8},
        **extra,
    }


def put_lora_output(job: dict[str, Any], content: bytes, owner_prefix_key: str) -> str:
    """Write what SageMaker uploads at the end of a job (CompressionType NONE layout)."""
    name = job["sagemaker_job_name"]
    key = f"{owner_prefix_key}{name}/output/model/{name}.safetensors"
    s3 = boto3.client("s3")
    s3.put_object(Bucket=BUCKET, Key=key, Body=content)
    summary = {
        "job_id": job["id"],
        "engine": "diffusers",
        "fm_type": job["fm_type"],
        "lora_filename": f"{name}.safetensors",
        "lora_sha256": "0" * 64,
        "lora_size_bytes": len(content),
        "steps": 12,
        "epochs": 2,
        "final_loss": 0.12,
        "duration_seconds": 30.0,
        "training_seconds": 20.0,
    }
    s3.put_object(
        Bucket=BUCKET, Key=f"{owner_prefix_key}{name}/output/model/summary.json", Body=json.dumps(summary)
    )
    return key


def job_spec_of(channel_uri: str) -> TrainingJobSpec:
    """The job.json SageMaker places in /opt/ml/input/data/job/, read from the emulated S3."""
    key = channel_uri.removeprefix(f"s3://{BUCKET}/") + JOB_SPEC_FILENAME
    data = service_context().storage.read_bytes(key)
    assert data is not None, f"no job spec at {key}"
    return TrainingJobSpec.from_json(data)

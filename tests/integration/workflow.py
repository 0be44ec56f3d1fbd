"""Steps of the user's workflow through the real handlers, with real presigned HTTP uploads."""

from __future__ import annotations

import contextlib
import io
import json
import struct
from collections.abc import Iterator
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


def tensor_file(shapes: dict[str, list[int]], metadata: dict[str, str] | None = None) -> bytes:
    """A valid safetensors file with uint8 tensors of these shapes (zeros)."""
    header: dict[str, Any] = {}
    offset = 0
    for name, shape in shapes.items():
        size = 1
        for n in shape:
            size *= n
        header[name] = {"dtype": "U8", "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    if metadata:
        header["__metadata__"] = metadata
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + bytes(offset)


def checkpoint_shapes(fm_type: str = "sd15", text_width: int = 8) -> dict[str, list[int]]:
    """The tensors that make a checkpoint recognisable as its family (narrow widths, tiny vocab):
    the UNet, VAE and text encoder(s) in the single-file layout, cross-attention as wide as the text."""
    unet, vae = "model.diffusion_model.", "first_stage_model."
    shapes = {
        f"{unet}input_blocks.0.0.weight": [4, 4, 3, 3],
        f"{unet}time_embed.0.weight": [16, 4],
        f"{unet}out.2.weight": [4, 4, 3, 3],
        f"{vae}encoder.conv_in.weight": [4, 3, 3, 3],
        f"{vae}decoder.conv_out.weight": [3, 4, 3, 3],
        f"{vae}quant_conv.weight": [8, 8, 1, 1],
    }
    if fm_type == "sd15":
        text = "cond_stage_model.transformer.text_model."
        shapes |= {f"{text}embeddings.token_embedding.weight": [16, text_width]}
        shapes |= {f"{text}final_layer_norm.weight": [text_width]}
        context = text_width
    else:
        first, second = "conditioner.embedders.0.transformer.text_model.", "conditioner.embedders.1.model."
        shapes |= {
            f"{first}embeddings.token_embedding.weight": [16, text_width],
            f"{first}final_layer_norm.weight": [text_width],
            f"{second}token_embedding.weight": [16, 2 * text_width],
            f"{second}ln_final.weight": [2 * text_width],
            f"{second}text_projection": [2 * text_width, 2 * text_width],
            f"{unet}label_emb.0.0.weight": [16, 8],
        }
        context = 3 * text_width
    shapes[f"{unet}input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"] = [4, context]
    return shapes


def checkpoint_bytes(fm_type: str = "sd15", extra_bytes: int = 0) -> bytes:
    """A small checkpoint the service recognises as ``fm_type`` (functions/domain/checkpoint_family),
    with ``extra_bytes`` more in one more tensor (for size-dependent tests)."""
    shapes = checkpoint_shapes(fm_type)
    if extra_bytes:
        shapes["model_ema.padding"] = [extra_bytes]
    return tensor_file(shapes)


def png_bytes(color: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), color).save(buffer, format="PNG")
    return buffer.getvalue()


def upload_model(
    api: ApiCaller,
    content: bytes,
    fm_type: str = "sd15",
    kind: str = "checkpoint",
    component: str | None = None,
    filename: str = "base.safetensors",
) -> dict[str, Any]:
    status, created = api(
        "POST",
        "/models",
        {
            "name": "base",
            "kind": kind,
            "fm_type": fm_type,
            "filename": filename,
            "size_bytes": len(content),
            **({"component": component} if component else {}),
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


@contextlib.contextmanager
def inline_tasks() -> Iterator[None]:
    """Background tasks the API hands over run at once, by the tasks function's own runner (here
    there is no tasks Lambda to invoke asynchronously)."""
    from functions.services.background import run_task
    from functions.services.context import service_context

    ctx = service_context()
    original = ctx.tasks

    from tests.iam_check import as_function

    class Inline:
        def dispatch(self, task: Any) -> None:
            with as_function("tasks"):  # its calls are the tasks function's, checked against its role
                run_task(ctx, task)

    ctx.tasks = Inline()  # type: ignore[assignment]
    try:
        yield
    finally:
        ctx.tasks = original


def complete_dataset(api: ApiCaller, dataset_id: str) -> tuple[int, dict[str, Any]]:
    """``complete``, then the background validation it starts; returns the dataset as it ends."""
    with inline_tasks():
        status, completed = api("POST", f"/datasets/{dataset_id}/complete")
    if status != 200:
        return status, completed
    assert completed["status"] in ("validating", "invalid"), completed
    return api("GET", f"/datasets/{dataset_id}")


def upload_dataset(api: ApiCaller, files: dict[str, bytes]) -> dict[str, Any]:
    status, created = declare_dataset(api, files)
    assert status == 201, created
    for upload in created["uploads"]:
        response = httpx.put(upload["url"], content=files[upload["path"]], headers=upload["headers"])
        assert response.status_code == 200, response.text
    status, dataset = complete_dataset(api, created["dataset"]["id"])
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
    model = upload_model(api, checkpoint_bytes(fm_type), fm_type=fm_type)
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


def put_lora_output(
    job: dict[str, Any], content: bytes, owner_prefix_key: str, training_job_name: str | None = None
) -> str:
    """Write what SageMaker uploads at the end of a job (CompressionType NONE layout): under the
    training job's name (Batch's own for a queued job), files named after the service's."""
    name = job["sagemaker_job_name"]
    folder = training_job_name or name
    key = f"{owner_prefix_key}{folder}/output/model/{name}.safetensors"
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
        Bucket=BUCKET, Key=f"{owner_prefix_key}{folder}/output/model/summary.json", Body=json.dumps(summary)
    )
    return key


def job_spec_of(channel_uri: str) -> TrainingJobSpec:
    """The job.json SageMaker places in /opt/ml/input/data/job/, read from the emulated S3."""
    key = channel_uri.removeprefix(f"s3://{BUCKET}/") + JOB_SPEC_FILENAME
    data = service_context().storage.read_bytes(key)
    assert data is not None, f"no job spec at {key}"
    return TrainingJobSpec.from_json(data)

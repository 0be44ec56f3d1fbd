"""Inputs that would fail a billed job are refused before one starts: a checkpoint must be of its
family, every dataset file must decode completely, and a dataset's content is frozen once validated
(presigned PUT URLs stay usable for minutes after ``complete``)."""

from __future__ import annotations

import io
import os
from typing import Any

import boto3
import httpx
import pytest
from PIL import Image

from functions.domain.storage_layout import dataset_file_key, dataset_prefix, dataset_upload_key
from functions.services.background import run_task
from functions.services.context import service_context
from tests.integration.conftest import BUCKET, ApiCaller
from tests.integration.workflow import (
    checkpoint_bytes,
    complete_dataset,
    declare_dataset,
    good_dataset,
    png_bytes,
    safetensors_bytes,
    training_body,
    upload_dataset,
    upload_model,
)


def _register(
    api: ApiCaller, content: bytes, fm_type: str = "sd15", kind: str = "checkpoint"
) -> tuple[int, Any]:
    status, created = api(
        "POST",
        "/models",
        {
            "name": "m",
            "kind": kind,
            "fm_type": fm_type,
            "filename": "m.safetensors",
            "size_bytes": len(content),
        },
    )
    assert status == 201, created
    part = created["upload"]["parts"][0]
    etag = httpx.put(part["url"], content=content).headers["ETag"]
    return api(
        "POST", f"/models/{created['model']['id']}/complete", {"parts": [{"part_number": 1, "etag": etag}]}
    )


def test_a_valid_one_tensor_file_is_not_an_sd15_checkpoint(api: ApiCaller) -> None:
    status, error = _register(api, safetensors_bytes(64))
    assert status == 400, error
    message = error["error"]["message"]
    assert (
        "not an SD 1.5 checkpoint: missing the UNet (model.diffusion_model.input_blocks.0.0.weight" in message
    )
    assert "the VAE (first_stage_model." in message and "the CLIP text encoder (cond_stage_model." in message
    assert api("GET", "/models")[1]["items"] == []  # the upload was discarded


def test_a_checkpoint_of_the_other_family_is_refused(api: ApiCaller) -> None:
    status, error = _register(api, checkpoint_bytes("sdxl"), fm_type="sd15")
    assert status == 400 and "not an SD 1.5 checkpoint: it is an SDXL checkpoint" in error["error"]["message"]
    status, error = _register(api, checkpoint_bytes("sd15"), fm_type="sdxl")
    assert status == 400 and "not an SDXL checkpoint: it is an SD 1.5 checkpoint" in error["error"]["message"]


def test_checkpoints_of_their_family_and_loras_are_accepted(api: ApiCaller) -> None:
    for fm_type in ("sd15", "sdxl"):
        assert upload_model(api, checkpoint_bytes(fm_type), fm_type=fm_type)["status"] == "ready"
    assert upload_model(api, safetensors_bytes(64), kind="lora")["status"] == "ready"  # LoRAs: header only


def _png_signature_then_noise(size: int = 600) -> bytes:
    return b"\x89PNG\r\n\x1a\n" + os.urandom(size - 8)


def test_an_image_that_does_not_decode_makes_the_dataset_invalid(api: ApiCaller) -> None:
    files = good_dataset() | {"10_cat/z.png": _png_signature_then_noise(), "10_cat/z.txt": b"noise"}
    dataset = upload_dataset(api, files)
    assert dataset["status"] == "invalid", dataset
    assert any(
        p.startswith("10_cat/z.png: the image does not decode") for p in dataset["manifest"]["problems"]
    )


def test_a_truncated_image_and_a_caption_that_is_not_utf8_past_its_first_bytes(api: ApiCaller) -> None:
    buffer = io.BytesIO()
    Image.frombytes("RGB", (64, 64), os.urandom(64 * 64 * 3)).save(buffer, format="PNG")
    whole = buffer.getvalue()
    files = {
        "1_c/a.png": whole[: len(whole) // 2],  # a valid start, half of the pixels missing
        "1_c/a.txt": b"a photo of a cat, " + b"\xff\xfe" + b" in the sun",
    }
    dataset = upload_dataset(api, files)
    assert dataset["status"] == "invalid", dataset
    problems = " ".join(dataset["manifest"]["problems"])
    assert (
        "1_c/a.png: the image does not decode" in problems
        and "1_c/a.txt: the caption is not UTF-8" in problems
    )


def test_a_dataset_is_validating_until_every_file_is_decoded_and_no_job_starts_meanwhile(
    api: ApiCaller, dispatched_tasks: list[Any]
) -> None:
    model = upload_model(api, checkpoint_bytes())
    files = good_dataset()
    status, created = declare_dataset(api, files)
    for upload in created["uploads"]:
        httpx.put(upload["url"], content=files[upload["path"]], headers=upload["headers"])
    dataset_id = created["dataset"]["id"]
    status, completed = api("POST", f"/datasets/{dataset_id}/complete")
    assert status == 200 and completed["status"] == "validating", completed
    assert [t.kind.value for t in dispatched_tasks] == ["dataset_validation"]
    status, error = api(
        "POST", "/trainings", training_body(model["id"], dataset_id), headers={"Idempotency-Key": dataset_id}
    )
    assert status == 400 and "dataset is validating, not ready" in str(error), error
    run_task(service_context(), dispatched_tasks[-1])
    assert api("GET", f"/datasets/{dataset_id}")[1]["status"] == "ready"
    run_task(service_context(), dispatched_tasks[-1])  # a retried invocation changes nothing
    assert api("GET", f"/datasets/{dataset_id}")[1]["status"] == "ready"


def test_a_duplicate_validation_that_loses_the_save_keeps_the_ready_datasets_files(
    api: ApiCaller, dispatched_tasks: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    files = good_dataset()
    _status, created = declare_dataset(api, files)
    for upload in created["uploads"]:
        httpx.put(upload["url"], content=files[upload["path"]], headers=upload["headers"])
    dataset_id = created["dataset"]["id"]
    assert api("POST", f"/datasets/{dataset_id}/complete")[1]["status"] == "validating"
    ctx = service_context()
    task, real_save = dispatched_tasks[-1], ctx.repository.save

    def winner_saves_first(record: Any, **kw: Any) -> bool:
        monkeypatch.setattr(ctx.repository, "save", real_save)
        run_task(ctx, task)  # the duplicate delivery, a moment ahead: saves READY
        return real_save(record, **kw)

    monkeypatch.setattr(ctx.repository, "save", winner_saves_first)
    run_task(ctx, task)  # loses the conditional save
    assert api("GET", f"/datasets/{dataset_id}")[1]["status"] == "ready"
    listed = boto3.client("s3").list_objects_v2(Bucket=BUCKET, Prefix=dataset_prefix(api.owner, dataset_id))
    assert sorted(
        o["Key"].removeprefix(dataset_prefix(api.owner, dataset_id)) for o in listed["Contents"]
    ) == sorted(files)


def test_the_tasks_functions_validation_reads_and_writes_are_checked_against_its_role(
    api: ApiCaller, dispatched_tasks: list[Any], request: pytest.FixtureRequest
) -> None:
    """Validation decodes on pool threads (no handler frame on their stacks): still the tasks function's."""
    from functions.tasks.handler import lambda_handler as tasks_handler
    from tests.conftest import LambdaContextStub
    from tests.iam_check import RolePolicies, denied_calls, recording, synthesized_template

    files = good_dataset()
    _status, created = declare_dataset(api, files)
    for upload in created["uploads"]:
        httpx.put(upload["url"], content=files[upload["path"]], headers=upload["headers"])
    dataset_id = created["dataset"]["id"]
    assert api("POST", f"/datasets/{dataset_id}/complete")[1]["status"] == "validating"
    with recording() as recorder:
        tasks_handler(dispatched_tasks[-1].model_dump(mode="json"), LambdaContextStub(function_name="tasks"))
    assert api("GET", f"/datasets/{dataset_id}")[1]["status"] == "ready"
    s3_calls = {
        (c.operation, c.params["Key"])
        for c in recorder.calls
        if c.function == "tasks" and "Key" in c.params and c.service == "s3"
    }
    for path in files:
        assert ("GetObject", dataset_upload_key(api.owner, dataset_id, path)) in s3_calls
        assert ("PutObject", dataset_file_key(api.owner, dataset_id, path)) in s3_calls
    template = synthesized_template(request.config.cache)
    assert denied_calls(recorder.calls, RolePolicies(template, recorder.env)) == []


def test_concurrent_decodes_stay_within_the_pixel_budget(
    api: ApiCaller, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Eight pool threads, but decodes wait for their share of the budget (here: one image's)."""
    import threading
    import time

    from functions.domain import image_decoding
    from functions.services import dataset_validation

    files = {f"1_c/{i}.png": png_bytes((i, 0, 0)) for i in range(6)}
    files |= {f"1_c/{i}.txt": b"a cat" for i in range(6)}
    one_image = 8 * 8 * 3  # png_bytes: 8x8 RGB
    monkeypatch.setattr(dataset_validation, "DECODE_BUDGET_BYTES", one_image, raising=False)
    real, lock, decoding, peak = image_decoding.image_problem, threading.Lock(), [0], [0]

    def observed(path: str, data: bytes) -> str | None:
        with lock:
            decoding[0] += 1
            peak[0] = max(peak[0], decoding[0])
        time.sleep(0.05)  # long enough for the other threads to arrive
        try:
            return real(path, data)
        finally:
            with lock:
                decoding[0] -= 1

    monkeypatch.setattr(image_decoding, "image_problem", observed)
    dataset = upload_dataset(api, files)
    assert dataset["status"] == "ready", dataset["manifest"]["problems"]
    assert peak[0] == 1


def test_a_file_replaced_after_complete_but_before_validation_is_what_gets_validated(
    api: ApiCaller, dispatched_tasks: list[Any]
) -> None:
    files = good_dataset()
    _status, created = declare_dataset(api, files)
    urls = {u["path"]: u for u in created["uploads"]}
    for path, upload in urls.items():
        httpx.put(upload["url"], content=files[path], headers=upload["headers"])
    dataset_id = created["dataset"]["id"]
    assert api("POST", f"/datasets/{dataset_id}/complete")[1]["status"] == "validating"
    size = len(files["10_cat/a.png"])  # Content-Length is signed: same size, other bytes
    swapped = httpx.put(
        urls["10_cat/a.png"]["url"],
        content=_png_signature_then_noise(size),
        headers=urls["10_cat/a.png"]["headers"],
    )
    assert swapped.status_code == 200  # the URL still works ...
    run_task(service_context(), dispatched_tasks[-1])
    dataset = api("GET", f"/datasets/{dataset_id}")[1]
    assert dataset["status"] == "invalid", dataset  # ... but what it wrote was validated, and refused


def test_a_write_through_a_live_url_after_validation_never_reaches_a_job(api: ApiCaller) -> None:
    files = good_dataset()
    _status, created = declare_dataset(api, files)
    urls = {u["path"]: u for u in created["uploads"]}
    for path, upload in urls.items():
        httpx.put(upload["url"], content=files[path], headers=upload["headers"])
    dataset_id = created["dataset"]["id"]
    assert complete_dataset(api, dataset_id)[1]["status"] == "ready"
    size = len(files["10_cat/a.png"])
    late = httpx.put(
        urls["10_cat/a.png"]["url"],
        content=_png_signature_then_noise(size),
        headers=urls["10_cat/a.png"]["headers"],
    )
    assert late.status_code == 200  # presigned PUTs stay valid for their 15 minutes
    s3 = boto3.client("s3")
    # The training channel is the files/ prefix: it holds exactly the validated bytes.
    key = dataset_file_key(api.owner, dataset_id, "10_cat/a.png")
    assert key.startswith(dataset_prefix(api.owner, dataset_id))
    assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == files["10_cat/a.png"]
    channel = s3.list_objects_v2(Bucket=BUCKET, Prefix=dataset_prefix(api.owner, dataset_id))["Contents"]
    assert sorted(o["Key"].removeprefix(dataset_prefix(api.owner, dataset_id)) for o in channel) == sorted(
        files
    )
    assert all(
        o["Size"] == len(files[o["Key"].removeprefix(dataset_prefix(api.owner, dataset_id))]) for o in channel
    )
    assert not any("uploads/" in u for u in (o["Key"] for o in channel))

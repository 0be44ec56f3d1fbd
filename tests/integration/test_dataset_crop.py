"""POST /datasets/{id}/crop against the emulator: the request, the task, the result, the failures."""

from __future__ import annotations

import io
from typing import Any

import boto3
import pytest
from PIL import Image

from functions.domain.background_tasks import TaskKind
from functions.domain.storage_layout import dataset_file_key, dataset_prefix
from functions.services.context import service_context
from functions.services.dataset_crop import run_crop_task
from tests.integration.conftest import BUCKET, ApiCaller
from tests.integration.workflow import upload_dataset


def photo(width: int, height: int, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (90, 140, 200)).save(buffer, format=fmt)
    return buffer.getvalue()


def source_dataset(api: ApiCaller) -> dict[str, Any]:
    return upload_dataset(
        api,
        {
            "5_cat/wide.png": photo(300, 200),
            "5_cat/wide.txt": b"sks cat, wide",
            "5_cat/tall.jpg": photo(120, 240, "JPEG"),
            "5_cat/tall.txt": b"sks cat, tall",
        },
    )


def stored_image(owner: str, dataset_id: str, path: str) -> Image.Image:
    body = boto3.client("s3").get_object(Bucket=BUCKET, Key=dataset_file_key(owner, dataset_id, path))["Body"]
    return Image.open(io.BytesIO(body.read()))


def test_a_crop_makes_a_new_ready_dataset_at_the_target_size(
    api: ApiCaller, dispatched_tasks: list[Any]
) -> None:
    source = source_dataset(api)
    status, crop = api("POST", f"/datasets/{source['id']}/crop", {"name": "cats 128", "width": 128})
    assert status == 202, crop
    assert crop["status"] == "processing" and crop["crop"]["source_dataset_id"] == source["id"]
    (task,) = dispatched_tasks
    assert task.kind is TaskKind.DATASET_CROP and task.record_id == crop["id"] and task.owner == api.owner

    run_crop_task(service_context(), task)
    status, done = api("GET", f"/datasets/{crop['id']}")
    assert status == 200 and done["status"] == "ready", done
    assert done["manifest"]["image_count"] == 2 and done["manifest"]["captioned_count"] == 2
    assert stored_image(api.owner, crop["id"], "5_cat/wide.png").size == (128, 128)
    assert stored_image(api.owner, crop["id"], "5_cat/tall.jpg").size == (120, 120)  # not upscaled
    assert stored_image(api.owner, crop["id"], "5_cat/tall.jpg").format == "JPEG"
    # the source is untouched
    assert stored_image(api.owner, source["id"], "5_cat/wide.png").size == (300, 200)

    run_crop_task(service_context(), task)  # a retried invocation changes nothing
    assert api("GET", f"/datasets/{crop['id']}")[1] == done


def test_an_undecodable_image_is_left_out_with_its_caption_and_reason(
    api: ApiCaller, dispatched_tasks: list[Any]
) -> None:
    source = source_dataset(api)
    s3 = boto3.client("s3")
    # corrupt one image after the source was checked (its first bytes still look like a PNG)
    s3.put_object(
        Bucket=BUCKET,
        Key=dataset_file_key(api.owner, source["id"], "5_cat/wide.png"),
        Body=b"\x89PNG\r\n\x1a\n" + b"\x00" * 64,
    )
    status, crop = api(
        "POST", f"/datasets/{source['id']}/crop", {"name": "c", "fm_type": "sd15", "upscale": True}
    )
    assert status == 202, crop
    run_crop_task(service_context(), dispatched_tasks[0])
    done = api("GET", f"/datasets/{crop['id']}")[1]
    assert done["status"] == "ready" and done["manifest"]["image_count"] == 1
    assert done["file_errors"] and done["file_errors"][0].startswith("5_cat/wide.png: not a decodable image")
    keys = s3.list_objects_v2(Bucket=BUCKET, Prefix=dataset_prefix(api.owner, crop["id"]))["Contents"]
    assert sorted(k["Key"].rsplit("/", 1)[-1] for k in keys) == ["tall.jpg", "tall.txt"]
    assert stored_image(api.owner, crop["id"], "5_cat/tall.jpg").size == (512, 512)  # upscaled


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "c"}, "width"),
        ({"name": "c", "width": 100}, "width"),
        ({"name": "c", "width": 512, "height": 8192}, "height"),
        ({"name": "c", "width": 512, "mode": "zoom"}, "mode"),
        ({"name": "c", "width": 512, "path": "../x"}, "path"),
        ({"width": 512}, "name"),
    ],
)
def test_bad_crop_requests_name_the_field_and_create_nothing(
    api: ApiCaller, dispatched_tasks: list[Any], body: dict[str, Any], field: str
) -> None:
    source = source_dataset(api)
    status, error = api("POST", f"/datasets/{source['id']}/crop", body)
    assert status == 400, error
    assert field in error["error"]["message"] or field in {
        d["field"].split(".")[-1] for d in error["error"]["details"]
    }
    assert dispatched_tasks == []
    assert [d["id"] for d in api("GET", "/datasets")[1]["items"]] == [source["id"]]


def test_only_the_owner_can_crop_and_only_a_ready_dataset(
    api: ApiCaller, other_api: ApiCaller, dispatched_tasks: list[Any]
) -> None:
    source = source_dataset(api)
    status, _ = other_api("POST", f"/datasets/{source['id']}/crop", {"name": "mine", "width": 64})
    assert status == 404
    _, declared = api("POST", "/datasets", {"name": "u", "files": [{"path": "1_a/a.png", "size_bytes": 10}]})
    status, error = api("POST", f"/datasets/{declared['dataset']['id']}/crop", {"name": "c", "width": 64})
    assert status == 409 and "ready" in error["error"]["message"]
    _, crop = api("POST", f"/datasets/{source['id']}/crop", {"name": "c", "width": 64})
    assert other_api("GET", f"/datasets/{crop['id']}")[0] == 404
    assert dispatched_tasks and len(dispatched_tasks) == 1


def test_a_crop_whose_task_never_finished_fails_on_read_and_gives_its_storage_back(
    api: ApiCaller, dispatched_tasks: list[Any]
) -> None:
    source = source_dataset(api)
    _, crop = api("POST", f"/datasets/{source['id']}/crop", {"name": "c", "width": 64})
    ctx = service_context()
    from functions.domain.records import DatasetRecord

    record = ctx.repository.get(DatasetRecord, crop["id"], api.owner)
    ctx.repository.save(record.model_copy(update={"updated_at": "2020-01-01T00:00:00.000000Z"}))
    status, failed = api("GET", f"/datasets/{crop['id']}")
    assert status == 200 and failed["status"] == "failed" and "did not finish" in failed["failure_reason"]
    run_crop_task(ctx, dispatched_tasks[0])  # a late run finds nothing to do
    assert api("GET", f"/datasets/{crop['id']}")[1]["status"] == "failed"
    status, _ = api("DELETE", f"/datasets/{crop['id']}")
    assert status == 204


def test_a_crop_deleted_while_processing_leaves_nothing_behind(
    api: ApiCaller, dispatched_tasks: list[Any]
) -> None:
    source = source_dataset(api)
    _, crop = api("POST", f"/datasets/{source['id']}/crop", {"name": "c", "width": 64})
    assert api("DELETE", f"/datasets/{crop['id']}")[0] == 204
    run_crop_task(service_context(), dispatched_tasks[0])
    listed = boto3.client("s3").list_objects_v2(Bucket=BUCKET, Prefix=dataset_prefix(api.owner, crop["id"]))
    assert listed.get("KeyCount", 0) == 0

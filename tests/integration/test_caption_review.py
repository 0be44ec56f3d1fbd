"""GET /datasets/{id}/files: caption review on the emulator, previews made by the validation."""

from __future__ import annotations

import io
from typing import Any

import boto3
import httpx
from PIL import Image

from functions.domain.storage_layout import dataset_root_prefix
from tests.integration.conftest import BUCKET, ApiCaller
from tests.integration.workflow import declare_dataset, good_dataset, upload_dataset


def keys_of(api: ApiCaller, dataset_id: str) -> list[str]:
    listed = boto3.client("s3").list_objects_v2(
        Bucket=BUCKET, Prefix=dataset_root_prefix(api.owner, dataset_id)
    )
    return [item["Key"] for item in listed.get("Contents", [])]


def test_pages_of_images_with_captions_and_previews(api: ApiCaller) -> None:
    dataset = upload_dataset(api, good_dataset())

    status, first = api(
        "GET", f"/datasets/{dataset['id']}/files", query={"with_captions": "true", "limit": "2"}
    )

    assert status == 200, first
    assert [(i["path"], i["caption"], i["has_caption"]) for i in first["items"]] == [
        ("10_cat/a.png", "a photo of a cat", True),
        ("10_cat/b.png", "a cat, sitting", True),
    ]
    preview = httpx.get(first["items"][0]["thumbnail_url"])
    assert preview.status_code == 200
    with Image.open(io.BytesIO(preview.content)) as image:
        assert image.format == "JPEG" and max(image.size) <= 256
    assert httpx.get(first["items"][0]["download_url"]).content == good_dataset()["10_cat/a.png"]
    status, rest = api(
        "GET",
        f"/datasets/{dataset['id']}/files",
        query={"with_captions": "true", "limit": "2", "next_token": first["next_token"]},
    )
    assert (
        status == 200 and [i["path"] for i in rest["items"]] == ["5_dog/c.png"] and rest["next_token"] is None
    )
    status, plain = api("GET", f"/datasets/{dataset['id']}/files")
    assert status == 200 and [i["caption"] for i in plain["items"]] == [None, None, None]


def test_previews_live_beside_the_training_files_and_go_with_the_dataset(api: ApiCaller) -> None:
    dataset = upload_dataset(api, good_dataset())
    keys = keys_of(api, dataset["id"])
    previews = [k for k in keys if "/thumbnails/" in k]
    assert len(previews) == 3 and not any("/files/" in k and k.endswith(".jpg") for k in keys)

    assert api("DELETE", f"/datasets/{dataset['id']}")[0] == 204
    assert keys_of(api, dataset["id"]) == []


def test_a_dataset_not_ready_is_a_conflict_and_tokens_are_bound(api: ApiCaller, other_api: ApiCaller) -> None:
    status, created = declare_dataset(api, good_dataset())
    assert status == 201
    status, answer = api("GET", f"/datasets/{created['dataset']['id']}/files")
    assert status == 409 and "uploading" in answer["error"]["message"]
    ready = upload_dataset(api, good_dataset())
    status, page = api("GET", f"/datasets/{ready['id']}/files", query={"limit": "1"})
    other: Any = upload_dataset(api, good_dataset())
    status, answer = api(
        "GET", f"/datasets/{other['id']}/files", query={"limit": "1", "next_token": page["next_token"]}
    )
    assert status == 400 and answer["error"]["details"][0]["field"] == "next_token"
    assert other_api("GET", f"/datasets/{ready['id']}/files")[0] == 404

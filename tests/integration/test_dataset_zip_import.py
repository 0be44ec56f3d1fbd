"""POST /datasets with a zip source_url, on the emulator: unpacked, validated like an upload,
and hostile zips refused with the reason and nothing left in the bucket."""

from __future__ import annotations

import io
import stat
import zipfile
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from functions.domain.storage_layout import dataset_root_prefix
from tests.integration.conftest import BUCKET, ApiCaller
from tests.integration.test_model_import import FileServer
from tests.integration.workflow import good_dataset, inline_tasks, png_bytes


@pytest.fixture
def files() -> Iterator[FileServer]:
    server = FileServer()
    yield server
    server.server.shutdown()


def zip_bytes(members: dict[str, bytes], symlinks: tuple[str, ...] = ()) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            if name in symlinks:
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, data)
    return buffer.getvalue()


def objects_of(api: ApiCaller, dataset_id: str) -> list[str]:
    listed = boto3.client("s3").list_objects_v2(
        Bucket=BUCKET, Prefix=dataset_root_prefix(api.owner, dataset_id)
    )
    return [item["Key"] for item in listed.get("Contents", [])]


def import_zip(api: ApiCaller, files: FileServer, archive: bytes, **extra: Any) -> dict[str, Any]:
    files.routes["/d/photos.zip"] = (200, {}, archive)
    with inline_tasks():
        status, created = api(
            "POST", "/datasets", {"name": "zipped", "source_url": files.url("/d/photos.zip"), **extra}
        )
    assert status == 202, created
    assert created["uploads"] == [] and created["dataset"]["status"] == "processing"
    status, dataset = api("GET", f"/datasets/{created['dataset']['id']}")
    assert status == 200
    return dict(dataset)


def test_a_zip_of_concept_folders_becomes_a_ready_dataset(api: ApiCaller, files: FileServer) -> None:
    archive = zip_bytes({f"photos/{path}": data for path, data in good_dataset().items()} | {"photos/": b""})

    dataset = import_zip(api, files, archive)

    assert dataset["status"] == "ready", dataset
    assert dataset["source_url"].endswith("/d/photos.zip") and dataset["file_count"] == 6
    manifest = dataset["manifest"]
    assert manifest["image_count"] == 3 and manifest["captioned_count"] == 3 and manifest["problems"] == []
    assert {c["folder"] for c in manifest["concepts"]} == {"10_cat", "5_dog"}
    keys = objects_of(api, dataset["id"])
    assert sorted(k.split(f"{dataset['id']}/", 1)[1] for k in keys if "/files/" in k) == sorted(
        f"files/{p}" for p in good_dataset()
    )
    assert not any("/uploads/" in k for k in keys)  # validated copies only, as after an upload


def test_a_flat_zip_takes_repeats_and_concept(api: ApiCaller, files: FileServer) -> None:
    archive = zip_bytes(
        {"a.png": png_bytes(), "a.txt": b"a cat", "b.png": png_bytes((4, 5, 6)), "b.txt": b"cat"}
    )

    dataset = import_zip(api, files, archive, repeats=4, concept="my cat")

    assert dataset["status"] == "ready", dataset
    assert [(c["folder"], c["repeats"], c["image_count"]) for c in dataset["manifest"]["concepts"]] == [
        ("4_my cat", 4, 2)
    ]


@pytest.mark.parametrize(
    ("members", "symlinks", "reason"),
    [
        ({"10_cat/a.png": png_bytes(), "../evil.txt": b"x"}, (), "climbs out"),
        ({"10_cat/a.png": png_bytes(), "/etc/cron.d/x.txt": b"x"}, (), "absolute path"),
        ({"10_cat/a.png": png_bytes(), "10_cat/b.png": b"/etc/passwd"}, ("10_cat/b.png",), "symbolic link"),
        ({"10_cat/a.png": png_bytes() + bytes(3 * 1024**2)}, (), "zip bomb"),
        ({f"10_cat/{i}.png": b"\x89PNG" for i in range(10_000)}, (), "10000 entries"),
        ({"10_cat/a.png": b"not a png at all"}, (), ""),  # well formed zip, bad image: invalid, not failed
    ],
)
def test_hostile_zips_are_refused_and_leave_nothing(
    api: ApiCaller, files: FileServer, members: dict[str, bytes], symlinks: tuple[str, ...], reason: str
) -> None:
    dataset = import_zip(api, files, zip_bytes(members, symlinks))

    if not reason:
        assert dataset["status"] == "invalid" and "is not a PNG image" in str(dataset["manifest"]["problems"])
        return
    assert dataset["status"] == "failed", dataset
    assert (
        dataset["failure_reason"].startswith("the zip was refused:") and reason in dataset["failure_reason"]
    )
    assert objects_of(api, dataset["id"]) == []
    assert dataset["total_bytes"] == 0


def test_a_file_that_is_not_a_zip_is_refused(api: ApiCaller, files: FileServer) -> None:
    dataset = import_zip(api, files, b"PK but not really a zip")

    assert dataset["status"] == "failed" and "not a zip archive" in dataset["failure_reason"]
    assert objects_of(api, dataset["id"]) == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"source_url": "https://example.com/photos.tar"}, "source_url"),
        ({"source_url": "http://example.com/photos.zip"}, "source_url"),
        ({"source_url": "https://10.0.0.1/photos.zip"}, "source_url"),
        (
            {"source_url": "https://example.com/a.zip", "files": [{"path": "1_a/a.png", "size_bytes": 1}]},
            "files",
        ),
        ({}, "files"),
        ({"files": [{"path": "1_a/a.png", "size_bytes": 9}], "repeats": 3}, "repeats"),
        ({"source_url": "https://example.com/photos.zip", "concept": "cat"}, "concept"),
    ],
)
def test_bad_import_requests_name_the_field(api: ApiCaller, body: dict[str, Any], field: str) -> None:
    status, answer = api("POST", "/datasets", {"name": "zipped", **body})

    assert status == 400, answer
    assert field in [d["field"] for d in answer["error"]["details"]] or field in answer["error"]["message"], (
        answer
    )

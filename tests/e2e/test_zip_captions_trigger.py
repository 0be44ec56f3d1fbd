"""Issue 16 through HTTP on the local runtime: datasets from a zip (a local file with loractl and a
URL with the API), hostile zips refused leaving nothing, caption review with a contact sheet, and a
training whose trigger word leads every caption and lands in the LoRA's metadata."""

from __future__ import annotations

import io
import json
import stat
import threading
import time
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from safetensors import safe_open

from tests.e2e.cli_helpers import run_cli
from tests.e2e.conftest import RunningRuntime, RuntimeLauncher
from training_container.testing.tiny_models import make_tiny_dataset, save_tiny_checkpoint

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("local-runtime-training")]


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRuntime]:
    launcher = RuntimeLauncher(tmp_path_factory.mktemp("zip-captions"))
    yield launcher.start()
    for started in launcher.started:
        started.stop()


def zip_of(folder: Path, prefix: str = "") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, prefix + path.relative_to(folder).as_posix())
    return buffer.getvalue()


def http(runtime: RunningRuntime) -> httpx.Client:
    return httpx.Client(
        base_url=runtime.api_url, headers={"Authorization": f"Bearer {runtime.token()}"}, timeout=60
    )


def settled(client: httpx.Client, dataset_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while (dataset := client.get(f"/datasets/{dataset_id}").json())["status"] in ("processing", "validating"):
        assert time.monotonic() < deadline, dataset
        time.sleep(0.5)
    return dict(dataset)


@pytest.fixture
def served() -> Iterator[dict[str, bytes]]:
    """A loopback file server (the local runtime allows plain http to loopback for imports)."""
    routes: dict[str, bytes] = {}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            body = routes.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    routes["__base__"] = f"http://127.0.0.1:{server.server_address[1]}".encode()
    yield routes
    server.shutdown()


def test_zip_from_a_url_and_a_hostile_one(
    runtime: RunningRuntime, served: dict[str, bytes], tmp_path: Path
) -> None:
    base = served["__base__"].decode()
    served["/photos.zip"] = zip_of(
        make_tiny_dataset(tmp_path / "set", concept="cat", repeats=3, n_images=2), "photos/"
    )
    hostile = io.BytesIO()
    with zipfile.ZipFile(hostile, "w") as archive:
        archive.writestr("3_cat/a.png", b"\x89PNG")
        link = zipfile.ZipInfo("3_cat/b.png")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(link, "/etc/passwd")
    served["/hostile.zip"] = hostile.getvalue()
    with http(runtime) as client:
        answer = client.post("/datasets", json={"name": "from url", "source_url": f"{base}/photos.zip"})
        assert answer.status_code == 202, answer.text
        dataset = settled(client, answer.json()["dataset"]["id"])
        assert dataset["status"] == "ready" and dataset["manifest"]["image_count"] == 2, dataset
        answer = client.post("/datasets", json={"name": "hostile", "source_url": f"{base}/hostile.zip"})
        refused = settled(client, answer.json()["dataset"]["id"])
        assert refused["status"] == "failed" and "symbolic link" in refused["failure_reason"], refused
        assert refused["total_bytes"] == 0


def test_zip_upload_caption_review_and_a_trigger_word_training(
    runtime: RunningRuntime, tmp_path: Path
) -> None:
    folder = make_tiny_dataset(tmp_path / "set", concept="cat", repeats=2, n_images=2)
    archive = tmp_path / "photos.zip"
    archive.write_bytes(zip_of(folder))
    uploaded = run_cli(runtime, "datasets", "upload", str(archive))
    assert uploaded.exit_code == 0, uploaded.stderr
    dataset = uploaded.data
    assert dataset["status"] == "ready" and dataset["name"] == "photos", dataset

    sheet = tmp_path / "sheet.jpg"
    captions = run_cli(runtime, "datasets", "captions", dataset["id"], "--contact-sheet", str(sheet))
    assert captions.exit_code == 0, captions.stderr
    assert [(i["path"], i["caption"]) for i in captions.data] == [
        ("2_cat/img_0.png", "cat, a square, flat colours"),
        ("2_cat/img_1.png", "cat, a circle, flat colours"),
    ]
    assert all(i["thumbnail_url"] for i in captions.data)
    with Image.open(sheet) as image:
        assert image.format == "JPEG" and image.width > 192

    checkpoint = save_tiny_checkpoint("sd15", tmp_path / "base.safetensors")
    model = run_cli(runtime, "models", "upload", str(checkpoint), "--fm-type", "sd15")
    assert model.exit_code == 0, model.stderr
    config = tmp_path / "fast.toml"
    config.write_text(
        "resolution = 256\nmin_bucket_reso = 256\nmax_bucket_reso = 512\nmax_train_steps = 2\n"
        "network_dim = 4\nnetwork_alpha = 2\nmax_data_loader_n_workers = 0\nshuffle_caption = true\n"
    )
    created = run_cli(runtime, "trainings", "create", "--model", model.data["id"], "--dataset",
                      dataset["id"], "--config", str(config), "--trigger-word", "sks cat", "--no-spot",
                      "--wait")  # fmt: skip
    assert created.exit_code == 0, created.stderr + created.stdout
    job = created.data
    assert job["trigger_word"] == "sks cat" and job["config"]["keep_tokens"] == 1, job
    downloaded = run_cli(runtime, "trainings", "download", job["id"], str(tmp_path / "loras"))
    assert downloaded.exit_code == 0, downloaded.stderr
    (lora,) = (tmp_path / "loras").glob("*.safetensors")
    with safe_open(str(lora), framework="pt") as handle:
        metadata = dict(handle.metadata() or {})
    assert metadata["modelspec.trigger_phrase"] == "sks cat"
    # every staged caption started with the trigger word: it is counted once per image
    assert json.loads(metadata["ss_tag_frequency"])["2_cat"]["sks cat"] == 2

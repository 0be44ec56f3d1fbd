"""The product end to end on the local runtime, driven with loractl and raw HTTP:
upload -> train -> download; stop; a failing job; ownership; state across a restart."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import httpx
import pytest
from safetensors import safe_open

from tests.e2e.cli_helpers import CliResult, run_cli
from tests.e2e.conftest import RunningRuntime, RuntimeLauncher
from training_container.testing.tiny_models import make_tiny_dataset, save_tiny_checkpoint

pytestmark = [
    pytest.mark.skipif(
        importlib.util.find_spec("functions.api.handler") is None
        or importlib.util.find_spec("functions.events.handler") is None,
        reason="the control plane's handlers (functions.api/events.handler) are not in the tree",
    ),
    pytest.mark.xdist_group("local-runtime-training"),  # one CPU training at a time per worker
]

FAST_CONFIG = """\
resolution = 256
min_bucket_reso = 256
max_bucket_reso = 512
network_dim = 4
network_alpha = 2
learning_rate = 1e-3
max_train_steps = {steps}
max_data_loader_n_workers = 0
"""


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_checkpoint("sd15", tmp_path_factory.mktemp("models") / "tiny-sd15.safetensors")


def config_file(folder: Path, steps: int) -> Path:
    path = folder / f"config-{steps}.toml"
    path.write_text(FAST_CONFIG.format(steps=steps))
    return path


def upload_inputs(runtime: RunningRuntime, checkpoint: Path, dataset: Path) -> tuple[str, str]:
    model = run_cli(runtime, "models", "upload", str(checkpoint), "--fm-type", "sd15")
    assert model.exit_code == 0, model.stderr
    assert model.data["status"] == "ready"
    uploaded = run_cli(runtime, "datasets", "upload", str(dataset), "--name", "cats")
    assert uploaded.exit_code == 0, uploaded.stderr
    return str(model.data["id"]), str(uploaded.data["id"])


def create_training(
    runtime: RunningRuntime, model_id: str, dataset_id: str, config: Path, *extra: str
) -> CliResult:
    return run_cli(
        runtime, "trainings", "create", "--model", model_id, "--dataset", dataset_id, "--fm-type", "sd15",
        "--instance-type", "ml.g5.xlarge", "--config", str(config), "--no-spot", *extra,
    )  # fmt: skip


@pytest.mark.slow
def test_full_workflow_ends_with_a_downloaded_kohya_lora(
    runtimes: RuntimeLauncher, checkpoint: Path, tmp_path: Path
) -> None:
    runtime = runtimes.start()
    model_id, dataset_id = upload_inputs(
        runtime, checkpoint, make_tiny_dataset(tmp_path / "ds", n_images=2, repeats=1)
    )

    finished = create_training(runtime, model_id, dataset_id, config_file(tmp_path, 4), "--wait")
    assert finished.exit_code == 0, finished.stderr
    assert finished.data["status"] == "COMPLETED"

    downloaded = run_cli(runtime, "trainings", "download", str(finished.data["id"]), str(tmp_path / "out"))
    assert downloaded.exit_code == 0, downloaded.stderr
    with safe_open(downloaded.data["path"], framework="pt") as lora:
        keys = list(lora.keys())
        metadata = lora.metadata()
    assert keys and all(key.startswith(("lora_unet_", "lora_te_")) for key in keys)
    assert metadata.get("ss_network_dim") == "4"
    listed = run_cli(runtime, "trainings", "list")
    assert [job["id"] for job in listed.data] == [finished.data["id"]]


@pytest.mark.slow
def test_stopping_a_running_job_ends_it_stopped(
    runtimes: RuntimeLauncher, checkpoint: Path, tmp_path: Path
) -> None:
    runtime = runtimes.start()
    model_id, dataset_id = upload_inputs(
        runtime, checkpoint, make_tiny_dataset(tmp_path / "ds", n_images=2, repeats=1)
    )
    created = create_training(runtime, model_id, dataset_id, config_file(tmp_path, 100_000))
    assert created.exit_code == 0, created.stderr
    job_id = str(created.data["id"])
    deadline = time.monotonic() + 120
    while run_cli(runtime, "trainings", "get", job_id).data["status"] != "TRAINING":
        assert time.monotonic() < deadline, "the job never reached TRAINING"
        time.sleep(0.5)

    assert run_cli(runtime, "trainings", "stop", job_id).exit_code == 0
    waited = run_cli(runtime, "trainings", "wait", job_id, "--timeout", "120")

    assert waited.exit_code == 4
    assert waited.data["status"] == "STOPPED"


def test_a_corrupt_image_is_refused_before_any_job_is_billed(
    runtimes: RuntimeLauncher, checkpoint: Path, tmp_path: Path
) -> None:
    """A PNG signature followed by garbage passes the first-bytes check of ``complete``; the
    background validation decodes every image, so the dataset ends ``invalid`` naming the file
    and no training job can start with it (it used to fail only inside the paid job)."""
    runtime = runtimes.start()
    dataset = make_tiny_dataset(tmp_path / "ds", n_images=2, repeats=1)
    (dataset / "1_demo" / "img_0.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00garbage" * 64)
    model = run_cli(runtime, "models", "upload", str(checkpoint), "--fm-type", "sd15")
    assert model.exit_code == 0, model.stderr
    uploaded = run_cli(runtime, "datasets", "upload", str(dataset), "--name", "cats")
    assert uploaded.exit_code == 3, uploaded.stderr  # loractl waited while it was validating
    assert uploaded.data["status"] == "invalid"
    assert any(
        p.startswith("1_demo/img_0.png: the image does not decode")
        for p in uploaded.data["manifest"]["problems"]
    )

    refused = create_training(
        runtime, str(model.data["id"]), str(uploaded.data["id"]), config_file(tmp_path, 4)
    )
    assert refused.exit_code != 0 and "dataset is invalid, not ready" in refused.stderr


def test_other_owners_cannot_see_a_model_and_state_survives_a_restart(
    runtimes: RuntimeLauncher, checkpoint: Path
) -> None:
    runtime = runtimes.start(users=("local", "alice"))
    model = run_cli(runtime, "models", "upload", str(checkpoint), "--fm-type", "sd15", "--name", "mine")
    assert model.exit_code == 0, model.stderr
    model_id = str(model.data["id"])

    as_alice = run_cli(runtime, "models", "get", model_id, user="alice")
    assert as_alice.exit_code == 3 and "404" in as_alice.stderr
    unauthenticated = httpx.get(f"{runtime.api_url}/models/{model_id}")
    assert unauthenticated.status_code == 401 and unauthenticated.json()["error"]["details"] == []

    assert runtime.stop() == 0
    restarted = runtimes.start(data_dir=runtime.data_dir, users=("local", "alice"))
    again = run_cli(restarted, "models", "get", model_id)
    assert again.exit_code == 0 and again.data["name"] == "mine" and again.data["status"] == "ready"
    downloaded = run_cli(restarted, "models", "download", model_id, str(runtime.data_dir.parent / "dl"))
    assert downloaded.exit_code == 0, downloaded.stderr
    assert Path(downloaded.data["path"]).read_bytes() == checkpoint.read_bytes()


def test_a_dataset_larger_than_one_batch_of_upload_urls_arrives_whole(
    runtimes: RuntimeLauncher, tmp_path: Path
) -> None:
    from functions.domain.dataset_rules import UPLOAD_URLS_PER_RESPONSE

    image = next(make_tiny_dataset(tmp_path / "seed", n_images=1).rglob("*.png"))
    folder = tmp_path / "big" / "2_cat"
    folder.mkdir(parents=True)
    images = UPLOAD_URLS_PER_RESPONSE // 2 + 5  # images + captions: just over one batch
    for i in range(images):
        (folder / f"cat{i:04d}.png").write_bytes(image.read_bytes())
        (folder / f"cat{i:04d}.txt").write_text(f"a photo of cat number {i}")

    runtime = runtimes.start()
    uploaded = run_cli(runtime, "datasets", "upload", str(tmp_path / "big"), "--workers", "8")
    assert uploaded.exit_code == 0, uploaded.stderr
    assert uploaded.data["status"] == "ready", uploaded.data
    manifest = uploaded.data["manifest"]
    assert manifest["image_count"] == images and manifest["captioned_count"] == images

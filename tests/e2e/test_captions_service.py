"""Captions without leaving the service, on the local runtime (the same handlers, the local
SageMaker running the real training image's entrypoint, tiny captioning models built offline):
an uncaptioned dataset -> a captions job -> a new dataset whose every caption starts with the
trigger word -> a training on it -> a LoRA; a second captions job on the same images is served
from the caption cache (no model run, recorded in the job)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.cli_helpers import run_cli
from tests.e2e.conftest import RunningRuntime, RuntimeLauncher
from training_container.captioning.captioning_job import MODELS_DIR_ENV
from training_container.testing.tiny_captioners import install_tiny_captioning_models
from training_container.testing.tiny_models import make_tiny_dataset, save_tiny_checkpoint

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("local-runtime-training")]
TRIGGER = "sks cat"


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRuntime]:
    folder = tmp_path_factory.mktemp("captions-service")
    models = install_tiny_captioning_models(folder / "models")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(MODELS_DIR_ENV, str(models))  # the runtime, and the jobs it runs, inherit it
        launcher = RuntimeLauncher(folder)
        yield launcher.start()
        for started in launcher.started:
            started.stop()


def test_uncaptioned_dataset_to_captions_to_lora_and_a_cached_second_job(
    runtime: RunningRuntime, tmp_path: Path
) -> None:
    folder = make_tiny_dataset(tmp_path / "set", concept="cat", repeats=2, n_images=2)
    for caption in folder.rglob("*.txt"):
        caption.unlink()
    uploaded = run_cli(runtime, "datasets", "upload", str(folder))
    assert uploaded.exit_code == 0, uploaded.stderr
    source = uploaded.data
    assert source["status"] == "ready" and source["manifest"]["missing_captions"] == 2, source

    checkpoint = save_tiny_checkpoint("sd15", tmp_path / "base.safetensors")
    model = run_cli(runtime, "models", "upload", str(checkpoint), "--fm-type", "sd15")
    assert model.exit_code == 0, model.stderr
    config = tmp_path / "fast.toml"
    config.write_text(
        "resolution = 256\nmin_bucket_reso = 256\nmax_bucket_reso = 512\nmax_train_steps = 2\n"
        "network_dim = 4\nnetwork_alpha = 2\nmax_data_loader_n_workers = 0\n"
    )
    refused = run_cli(runtime, "trainings", "create", "--model", model.data["id"], "--dataset", source["id"],
                      "--config", str(config), "--no-spot")  # fmt: skip
    assert refused.exit_code != 0 and source["id"] in refused.stderr and "without a caption" in refused.stderr

    first = run_cli(runtime, "datasets", "caption", source["id"], "--trigger-word", TRIGGER, "--wait")
    assert first.exit_code == 0, first.stderr + first.stdout
    captioned = first.data
    assert captioned["id"] != source["id"] and captioned["status"] == "ready", captioned
    assert captioned["manifest"]["image_count"] == 2 and captioned["manifest"]["missing_captions"] == 0
    summary = captioned["captions"]["summary"]
    assert summary["model_runs"] == 2 and summary["cache_hits"] == 0 and summary["failures"] == []
    captions = run_cli(runtime, "datasets", "captions", captioned["id"])
    assert captions.exit_code == 0, captions.stderr
    assert len(captions.data) == 2
    assert all(item["caption"].startswith(f"{TRIGGER}, ") for item in captions.data), captions.data
    unchanged = run_cli(runtime, "datasets", "get", source["id"]).data
    assert unchanged["manifest"]["missing_captions"] == 2 and unchanged["updated_at"] == source["updated_at"]

    created = run_cli(runtime, "trainings", "create", "--model", model.data["id"], "--dataset",
                      captioned["id"], "--config", str(config), "--trigger-word", TRIGGER, "--no-spot",
                      "--wait")  # fmt: skip
    assert created.exit_code == 0, created.stderr + created.stdout
    assert created.data["status"] == "COMPLETED", created.data
    downloaded = run_cli(runtime, "trainings", "download", created.data["id"], str(tmp_path / "loras"))
    assert downloaded.exit_code == 0, downloaded.stderr
    assert len(list((tmp_path / "loras").glob("*.safetensors"))) == 1

    second = run_cli(runtime, "datasets", "caption", source["id"], "--trigger-word", TRIGGER, "--wait")
    assert second.exit_code == 0, second.stderr + second.stdout
    again = second.data["captions"]["summary"]
    assert again["model_runs"] == 0 and again["cache_hits"] == 2, again
    assert second.data["status"] == "ready"

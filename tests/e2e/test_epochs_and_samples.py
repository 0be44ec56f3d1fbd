"""Per-epoch LoRA versions and sample images end to end: local runtime, real CPU training, loractl."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from PIL import Image
from safetensors import safe_open

from loractl.contact_sheet import sheet_size
from tests.e2e.cli_helpers import run_cli
from tests.e2e.conftest import RuntimeLauncher
from tests.e2e.test_workflow import checkpoint, create_training, upload_inputs
from training_container.testing.tiny_models import make_tiny_dataset

__all__ = ["checkpoint"]  # the module-scoped fixture, shared with the workflow tests

pytestmark = [
    pytest.mark.skipif(
        importlib.util.find_spec("functions.api.handler") is None,
        reason="the control plane's handlers are not in the tree",
    ),
    pytest.mark.xdist_group("local-runtime-training"),
]

TWO_EPOCHS_SAVING_EACH = """\
resolution = 256
min_bucket_reso = 256
max_bucket_reso = 512
network_dim = 4
network_alpha = 2
learning_rate = 1e-3
max_train_epochs = 2
save_every_n_epochs = 1
max_data_loader_n_workers = 0
"""
PROMPTS = [
    {"prompt": "a photo of demo", "width": 64, "height": 64, "steps": 1, "seed": 3},
    {"prompt": "demo in the snow", "negative_prompt": "blurry", "width": 64, "height": 64, "steps": 1},
]


@pytest.mark.slow
def test_saved_epochs_become_versions_and_samples_make_a_contact_sheet(
    runtimes: RuntimeLauncher, checkpoint: Path, tmp_path: Path
) -> None:
    runtime = runtimes.start(users=("local", "alice"))
    model_id, dataset_id = upload_inputs(
        runtime, checkpoint, make_tiny_dataset(tmp_path / "ds", n_images=2, repeats=1)
    )
    (tmp_path / "config.toml").write_text(TWO_EPOCHS_SAVING_EACH)
    (tmp_path / "prompts.json").write_text(json.dumps(PROMPTS))

    prompts = str(tmp_path / "prompts.json")
    finished = create_training(
        runtime, model_id, dataset_id, tmp_path / "config.toml", "--sample-prompts", prompts, "--wait"
    )
    assert finished.exit_code == 0, finished.stderr
    job = finished.data
    assert job["status"] == "COMPLETED" and job["output"]["epochs"] == [1, 2], job
    assert [(s["epoch"], s["prompt_index"]) for s in job["samples"]] == [(1, 0), (1, 1), (2, 0), (2, 1)]

    lora = run_cli(runtime, "models", "get", job["id"]).data
    assert [(v["epoch"], v["is_default"]) for v in lora["versions"]] == [(1, False), (2, True)]
    first = run_cli(runtime, "models", "download", job["id"], str(tmp_path / "loras"), "--epoch", "1")
    final = run_cli(runtime, "trainings", "download", job["id"], str(tmp_path / "loras"))
    assert first.exit_code == 0 and final.exit_code == 0, first.stderr + final.stderr
    assert Path(first.data["path"]).name.endswith("-000001.safetensors")
    with safe_open(first.data["path"], framework="pt") as handle:
        assert handle.metadata()["ss_epoch"] == "1"
    assert Path(first.data["path"]).read_bytes() != Path(final.data["path"]).read_bytes()
    missing = run_cli(runtime, "models", "download", job["id"], str(tmp_path / "x"), "--epoch", "5")
    assert missing.exit_code != 0 and "epoch" in missing.stderr

    sheet = run_cli(runtime, "trainings", "samples", job["id"], str(tmp_path / "samples"))
    assert sheet.exit_code == 0, sheet.stderr
    assert sheet.data["samples"] == 4
    with Image.open(sheet.data["contact_sheet"]) as image:
        assert image.format == "PNG" and image.size == sheet_size(2, 2)
    with Image.open(tmp_path / "samples" / job["id"] / "epoch002_prompt01.png") as sample:
        assert sample.size == (64, 64)

    # Another caller sees neither the versions nor the samples.
    assert (
        run_cli(
            runtime, "models", "download", job["id"], str(tmp_path / "y"), "--epoch", "1", user="alice"
        ).exit_code
        != 0
    )
    assert (
        run_cli(runtime, "trainings", "samples", job["id"], str(tmp_path / "z"), user="alice").exit_code != 0
    )
    assert not (tmp_path / "z").exists()

"""Logs and loss curve of a real (tiny, CPU) training on the local runtime: the container's output
reaches the emulated CloudWatch Logs and the API, the curve reaches /metrics, loractl reads
and plots both, another user sees nothing, and the log survives a runtime restart."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.e2e.cli_helpers import run_cli
from tests.e2e.conftest import RuntimeLauncher
from tests.e2e.test_workflow import config_file, create_training, upload_inputs
from training_container.testing.tiny_models import make_tiny_dataset, save_tiny_checkpoint

pytestmark = [
    pytest.mark.skipif(
        importlib.util.find_spec("functions.api.handler") is None,
        reason="the control plane's handlers are not in the tree",
    ),
    pytest.mark.xdist_group("local-runtime-training"),  # one CPU training at a time per worker
    pytest.mark.slow,
]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_checkpoint("sd15", tmp_path_factory.mktemp("models") / "tiny-sd15.safetensors")


def test_a_trained_job_has_its_log_and_loss_curve(
    runtimes: RuntimeLauncher, checkpoint: Path, tmp_path: Path
) -> None:
    runtime = runtimes.start(users=("local", "alice"))
    model_id, dataset_id = upload_inputs(runtime, checkpoint, make_tiny_dataset(tmp_path / "ds", n_images=2))
    finished = create_training(runtime, model_id, dataset_id, config_file(tmp_path, 4), "--wait")
    assert finished.exit_code == 0, finished.stderr
    job_id = str(finished.data["id"])

    # The tail, through loractl (one JSON object per line with --json).
    logs = run_cli(runtime, "trainings", "logs", job_id, "--limit", "1000")
    assert logs.exit_code == 0, logs.stderr
    messages = [json.loads(line)["message"] for line in logs.stdout.splitlines()]
    assert any("published" in m and ".safetensors" in m for m in messages), messages[-5:]
    assert any("step 4/4" in m for m in messages)
    followed = run_cli(runtime, "trainings", "logs", job_id, "--head", "--follow", "--limit", "5")
    assert followed.exit_code == 0  # ends by itself: the job is over and its log drained
    assert [json.loads(line)["message"] for line in followed.stdout.splitlines()] == messages

    # The curve, over raw HTTP.
    headers = {"Authorization": f"Bearer {runtime.token()}"}
    curve = httpx.get(f"{runtime.api_url}/trainings/{job_id}/metrics", headers=headers).json()
    assert curve["engine"] == "diffusers" and curve["total_steps"] == 4
    assert [p["step"] for p in curve["points"]] == [1, 2, 3, 4]
    assert all(p["loss"] > 0 and p["learning_rate"] is not None for p in curve["points"])
    assert curve["points"][0]["learning_rate"] > 0  # (the schedule may decay to 0 at the end)

    plotted = run_cli(runtime, "trainings", "plot", job_id, str(tmp_path / "loss.png"))
    assert plotted.exit_code == 0, plotted.stderr
    with Image.open(plotted.data["path"]) as image:
        assert image.format == "PNG"

    for command in ("logs", "plot"):
        assert run_cli(runtime, "trainings", command, job_id, user="alice").exit_code == 3
    for suffix in ("logs", "metrics"):
        other = {"Authorization": f"Bearer {runtime.token('alice')}"}
        assert httpx.get(f"{runtime.api_url}/trainings/{job_id}/{suffix}", headers=other).status_code == 404

    # moto keeps logs in memory; the restarted runtime puts them back.
    assert runtime.stop() == 0
    restarted = runtimes.start(data_dir=runtime.data_dir, users=("local", "alice"))
    again = run_cli(restarted, "trainings", "logs", job_id, "--limit", "1000")
    assert [json.loads(line)["message"] for line in again.stdout.splitlines()] == messages

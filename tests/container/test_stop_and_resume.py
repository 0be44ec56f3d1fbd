"""SIGTERM (stop, spot interruption) saves state and exits 0; a restarted job resumes from it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from functions.domain.catalog import FmType
from functions.domain.training_contract import ProgressReport, TrainingSummary
from tests.container.conftest import JobFactory
from training_container.engines.diffusers_engine import STATE_FILE, STATE_FOLDER

pytestmark = pytest.mark.slow
REPO_ROOT = Path(__file__).resolve().parents[2]
TOTAL_STEPS = 80


def _start(root: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "training_container.entrypoint", "--root", str(root)],
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_for_step(root: Path, process: subprocess.Popen[str], minimum: int, timeout: float = 300) -> None:
    progress_file = root / "checkpoints" / "progress.json"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "training ended before it could be interrupted"
        if progress_file.is_file():
            report = ProgressReport.model_validate_json(progress_file.read_text())
            if report.step >= minimum:
                return
        time.sleep(0.1)
    raise AssertionError("training never reached the expected step")


def test_sigterm_saves_state_and_a_restart_resumes_at_the_saved_step(make_job: JobFactory) -> None:
    root = make_job(FmType.SD15, config={"max_train_steps": TOTAL_STEPS, "cache_latents": True})
    first = _start(root)
    _wait_for_step(root, first, minimum=2)

    first.send_signal(signal.SIGTERM)
    first_output, _ = first.communicate(timeout=300)  # hang guards, generous for a loaded machine

    assert first.returncode == 0, first_output[-3000:]
    state = torch.load(root / "checkpoints" / STATE_FOLDER / STATE_FILE, weights_only=False)
    saved_step = state["training"]["global_step"]
    assert 2 <= saved_step < TOTAL_STEPS
    assert not (root / "model" / "my-lora.safetensors").exists()
    assert not (root / "output" / "failure").exists()

    second = _start(root)
    second_output, _ = second.communicate(timeout=600)

    assert second.returncode == 0, second_output[-3000:]
    assert f"resuming from step {saved_step} " in second_output
    summary = TrainingSummary.model_validate_json((root / "model" / "summary.json").read_text())
    assert summary.steps == TOTAL_STEPS

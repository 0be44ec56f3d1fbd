"""docs/api-workflow.sh (the README's curl recipes as a script) against the local runtime:
a checkpoint of more than one 64 MiB part arrives whole, a dataset of more than 500 files
with spaces in its names arrives whole, the plan and a retry-safe training request work."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
from PIL import Image

from functions.adapters.storage import MIN_PART_SIZE
from functions.domain.dataset_rules import UPLOAD_URLS_PER_RESPONSE
from tests.e2e.conftest import PROJECT_ROOT, RunningRuntime, RuntimeLauncher
from tests.integration.workflow import checkpoint_bytes

SCRIPT = PROJECT_ROOT / "docs" / "api-workflow.sh"
pytestmark = [
    pytest.mark.skipif(
        not all(shutil.which(tool) for tool in ("bash", "curl", "jq")), reason="needs bash, curl and jq"
    ),
    pytest.mark.xdist_group("local-runtime-training"),
]


def script(runtime: RunningRuntime, cwd: Path, *arguments: str) -> str:
    env = {**os.environ, "API": runtime.api_url, "TOKEN": runtime.token()}
    result = subprocess.run(
        [str(SCRIPT), *arguments], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, f"{arguments}: exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result.stdout.strip()


def big_checkpoint(path: Path) -> Path:
    """An SD 1.5 checkpoint the service recognises, just over one multipart part (so it needs two)."""
    path.write_bytes(checkpoint_bytes("sd15", extra_bytes=MIN_PART_SIZE + 1024 * 1024))
    assert path.stat().st_size > MIN_PART_SIZE
    return path


def many_file_dataset(root: Path, images: int) -> Path:
    concept = root / "10_sks cat"
    concept.mkdir(parents=True)
    for index in range(images):
        Image.new("RGB", (8, 8), (index % 256, 0, 0)).save(concept / f"photo {index:03d}.png")
        (concept / f"photo {index:03d}.txt").write_text(f"sks cat, photo {index}")
    (concept / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")  # skipped, as loractl does
    return root


def test_curl_recipes_move_any_size_and_start_a_job(runtimes: RuntimeLauncher, tmp_path: Path) -> None:
    runtime = runtimes.start()
    checkpoint = big_checkpoint(tmp_path / "big base.safetensors")
    model_id = script(runtime, tmp_path, "model", checkpoint.name, "sd15")
    downloaded = tmp_path / "back.safetensors"
    script(runtime, tmp_path, "download", model_id, str(downloaded))
    assert (
        hashlib.sha256(downloaded.read_bytes()).digest() == hashlib.sha256(checkpoint.read_bytes()).digest()
    )

    images = UPLOAD_URLS_PER_RESPONSE // 2 + 5  # image + caption each: more files than one answer's URLs
    dataset_id = script(
        runtime, tmp_path, "dataset", str(many_file_dataset(tmp_path / "my dataset", images)), "cats"
    )
    auth = {"Authorization": f"Bearer {runtime.token()}"}
    record = httpx.get(f"{runtime.api_url}/datasets/{dataset_id}", headers=auth, timeout=60).json()
    assert record["status"] == "ready" and record["manifest"]["image_count"] == images

    plan = script(runtime, tmp_path, "validate", "sd15", '{"network_dim": 8}', dataset_id, "ml.g5.2xlarge")
    assert '"total_steps"' in plan
    job_id = script(
        runtime, tmp_path, "train", "sd15", model_id, dataset_id, "ml.g5.2xlarge", '{"network_dim": 8}'
    )
    assert len(job_id) == 26
    assert '"status"' in script(runtime, tmp_path, "status", job_id)

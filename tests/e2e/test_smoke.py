"""`make smoke` against the local runtime: the script a deployed stack is checked with cannot rot."""

from __future__ import annotations

import subprocess
import sys

from tests.e2e.conftest import PROJECT_ROOT, RuntimeLauncher


def test_the_smoke_script_passes_against_the_local_runtime(runtimes: RuntimeLauncher) -> None:
    runtime = runtimes.start()
    command = [
        sys.executable, str(PROJECT_ROOT / "scripts" / "smoke.py"),
        "--endpoint", runtime.api_url, "--token", runtime.token(),
        "--wait-seconds", "180", "--poll-seconds", "0.5",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=400, cwd=PROJECT_ROOT)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    for step in (
        "GET /configs/defaults",
        "model: create",
        "dataset: declare",
        "POST /trainings on",
        "POST /trainings/",
    ):
        assert f"[smoke] {step}" in result.stdout, step
    assert "deleted training" in result.stdout and "deleted model" in result.stdout
    assert "[smoke] all steps passed" in result.stdout

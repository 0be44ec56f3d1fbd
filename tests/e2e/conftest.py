"""Fixtures of the end-to-end tests: the local runtime started as its own process.

Each runtime gets free ports and a temporary data directory, so tests can run in parallel
(pytest-xdist) and restart a runtime on the same data directory.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from local_runtime.defaults import RUNTIME_INFO_FILE

PROJECT_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_SECONDS = 90


@dataclass
class RunningRuntime:
    """A started ``python -m local_runtime serve`` and what it published in runtime.json."""

    process: subprocess.Popen[bytes]
    data_dir: Path
    info: dict[str, Any]
    log: Path

    @property
    def api_url(self) -> str:
        return str(self.info["api_url"])

    def token(self, user: str = "local") -> str:
        return str(self.info["tokens"][user])

    def env(self, user: str = "local") -> dict[str, str]:
        """Environment for running loractl against this runtime as ``user``."""
        return {"LORACTL_ENDPOINT": self.api_url, "LORACTL_TOKEN": self.token(user)}

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait()


@dataclass
class RuntimeLauncher:
    tmp_path: Path
    started: list[RunningRuntime] = field(default_factory=list)

    @property
    def calls(self) -> Path:
        return self.tmp_path / "aws-calls.jsonl"

    def start(
        self, data_dir: Path | None = None, users: tuple[str, ...] = ("local",), extra: tuple[str, ...] = ()
    ) -> RunningRuntime:
        folder = data_dir or self.tmp_path / "data"
        folder.mkdir(parents=True, exist_ok=True)
        info_file = folder / RUNTIME_INFO_FILE
        info_file.unlink(missing_ok=True)
        log = self.tmp_path / f"runtime-{len(self.started)}.log"
        # `python -m local_runtime`, with the AWS calls of the functions it hosts recorded for
        # the IAM check at teardown (tests/iam_check.py).
        record = (
            "from pathlib import Path; from tests.iam_check import run_module_recording; "
            f"run_module_recording('local_runtime', Path({str(self.calls)!r}))"
        )
        command = [
            sys.executable,
            "-c",
            record,
            "serve",
            "--port",
            "0",
            "--data-dir",
            str(folder),
            "--no-cli-config",
        ]
        for user in users:
            command += ["--user", user]
        env = {**os.environ, "LORACTL_CONFIG": str(self.tmp_path / "loractl.toml")}
        with log.open("wb") as output:
            process = subprocess.Popen(
                [*command, *extra], cwd=PROJECT_ROOT, stdout=output, stderr=subprocess.STDOUT, env=env
            )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not info_file.is_file():
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise AssertionError(f"the local runtime did not start:\n{log.read_text()[-4000:]}")
            time.sleep(0.1)
        runtime = RunningRuntime(process, folder, json.loads(info_file.read_text()), log)
        self.started.append(runtime)
        return runtime


@pytest.fixture
def runtimes(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[RuntimeLauncher]:
    launcher = RuntimeLauncher(tmp_path)
    yield launcher
    for runtime in launcher.started:
        runtime.stop()
    # Every AWS call the hosted functions made must be allowed by their roles in the template.
    from tests.iam_check import RolePolicies, denied_calls, read_recorded, synthesized_template

    calls, env = read_recorded(launcher.calls)
    if calls:
        denied = denied_calls(calls, RolePolicies(synthesized_template(request.config.cache), env))
        assert denied == [], "calls the function's role does not allow:\n" + "\n".join(denied)

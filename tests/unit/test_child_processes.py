"""The local runtime's training processes (and everything they start) die with it, and a restart
ends any that a runtime on the same work folder left behind."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from local_runtime.child_processes import MARKER_VARIABLE, end_leftover_processes

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl and /proc are Linux")
PROJECT_ROOT = Path(__file__).resolve().parents[2]

# A stand-in for the container: starts a grandchild (as the entrypoint starts sd-scripts), writes
# both pids, then trains forever.
CONTAINER = textwrap.dedent(
    """
    import json, os, subprocess, sys, time
    grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    with open(sys.argv[1] + ".tmp", "w") as f:
        json.dump({"container": os.getpid(), "engine": grandchild.pid}, f)
    os.replace(sys.argv[1] + ".tmp", sys.argv[1])
    time.sleep(600)
    """
)

# A stand-in for the runtime: starts the container exactly as the job runner does, then waits.
RUNTIME = textwrap.dedent(
    """
    import os, subprocess, sys, time
    from local_runtime.child_processes import MARKER_VARIABLE, spawn_guarded
    env = dict(os.environ, **{MARKER_VARIABLE: sys.argv[3]})
    process = spawn_guarded([sys.executable, "-c", sys.argv[1], sys.argv[2]], env=env)
    process.wait()
    """
)


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for a reaper counts as dead: it uses no CPU or memory)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _wait_for(path: Path, timeout: float = 30) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, "the container never started"
        time.sleep(0.05)
    return {k: int(v) for k, v in json.loads(path.read_text()).items()}


def _all_gone(pids: list[int], timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while any(_alive(p) for p in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _kill_all(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def test_a_sigkilled_runtime_takes_the_training_tree_along(tmp_path: Path) -> None:
    pids_file = tmp_path / "pids.json"
    env = dict(os.environ, PYTHONPATH=str(PROJECT_ROOT))
    runtime = subprocess.Popen(
        [sys.executable, "-c", RUNTIME, CONTAINER, str(pids_file), str(tmp_path / "work")], env=env
    )
    pids = _wait_for(pids_file)
    tree = [pids["container"], pids["engine"]]
    try:
        assert all(_alive(p) for p in tree)
        runtime.kill()  # SIGKILL: no handler, no cleanup code of the runtime runs
        runtime.wait()
        assert _all_gone(tree), {p: _alive(p) for p in tree}
    finally:
        _kill_all(tree)


def test_a_stop_request_is_forwarded_to_the_container(tmp_path: Path) -> None:
    """SIGTERM to the guardian reaches the container (SageMaker's stop), which decides how to end."""
    from local_runtime.child_processes import spawn_guarded

    script = "import signal, sys, time; signal.signal(signal.SIGTERM, lambda *_: sys.exit(7)); time.sleep(60)"
    env = dict(os.environ, PYTHONPATH=str(PROJECT_ROOT))
    guardian = spawn_guarded([sys.executable, "-c", script], env=env)
    # At once, while both are still starting: the guardian starts with SIGTERM blocked, and passes
    # the stop on only once the container has its handler (it would die of a plain SIGTERM).
    guardian.send_signal(signal.SIGTERM)
    assert guardian.wait(timeout=20) == 7


def test_a_restart_ends_processes_left_on_its_work_folder(tmp_path: Path) -> None:
    ours, other = tmp_path / "work", tmp_path / "elsewhere"
    sleeper = [sys.executable, "-c", "import time; time.sleep(600)"]
    left = subprocess.Popen(sleeper, env=dict(os.environ, **{MARKER_VARIABLE: str(ours)}))
    unrelated = subprocess.Popen(sleeper, env=dict(os.environ, **{MARKER_VARIABLE: str(other)}))
    try:
        time.sleep(0.3)
        assert end_leftover_processes(ours) == [left.pid]
        assert left.wait(timeout=10) == -signal.SIGKILL
        assert unrelated.poll() is None
    finally:
        _kill_all([left.pid, unrelated.pid])
        unrelated.wait()

"""Training processes of the local runtime never outlive it.

A training job runs as ``python -m local_runtime.child_processes <runtime pid> -- <command>``: a
small guardian that leads its own process group (the runner starts it with
``start_new_session``), asks Linux to signal it when the runtime dies
(``prctl(PR_SET_PDEATHSIG)``, see prctl(2)), and then runs the container command as its child.

- The runtime dies (even by SIGKILL): the guardian gets ``PARENT_DIED_SIGNAL`` and kills its
  whole process group, so the container and the engine it started (sd-scripts, accelerate) end
  too. A parent-death signal alone would reach only the direct child.
- A stop request (SIGTERM, like SageMaker's StopTrainingJob) is forwarded to the container once
  it has a SIGTERM handler, so it saves its state and returns; the runner kills the group if it
  does not end in time.
- Every process of the tree carries ``MARKER_VARIABLE`` (the runner's work folder) in its
  environment; on the next start, ``end_leftover_processes`` kills any process still marked
  with that folder (for platforms without a parent-death signal, or a runtime that died in the
  instant between the guardian's start and its ``prctl``).

prctl(2): "the parent-death signal is sent upon subsequent termination of the parent thread",
so the runner starts the guardian from the worker thread that then waits for it to end.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

MARKER_VARIABLE = "LORA_LOCAL_TRAINING_ROOT"
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
PARENT_DIED_SIGNAL = signal.SIGUSR1  # not SIGTERM: that one means "stop gracefully"
STOP_DELIVERY_WAIT_SECONDS = 10.0


def spawn_guarded(command: list[str], **popen_kwargs: object) -> subprocess.Popen[bytes]:
    """Start ``command`` under the guardian, in its own process group, with SIGTERM blocked until
    the guardian has its handler (the mask is inherited; this thread's is restored at once)."""
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    try:
        return subprocess.Popen(guarded_command(command), start_new_session=True, **popen_kwargs)  # type: ignore[call-overload]
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


def guarded_command(command: list[str]) -> list[str]:
    """``command`` run under the guardian, tied to this (the runtime's) process."""
    return [sys.executable, "-m", "local_runtime.child_processes", str(os.getpid()), "--", *command]


def set_parent_death_signal(signum: int) -> bool:
    """Ask the kernel to send ``signum`` when the parent dies (Linux only); whether it was set."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    return int(libc.prctl(PR_SET_PDEATHSIG, int(signum), 0, 0, 0)) == 0


def _kill_own_group(*_: object) -> None:
    os.killpg(os.getpgrp(), signal.SIGKILL)


def catches(pid: int, signum: int) -> bool:
    """Whether a process has a handler installed for ``signum`` (``SigCgt`` in /proc/<pid>/status);
    True where that cannot be read (then the signal is simply sent)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True
    for line in status.splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (signum - 1) & 1)
    return True


def run_guardian(parent_pid: int, command: list[str]) -> int:
    """The guardian's life: die with the parent (taking the group along), run and await the child,
    passing a stop request (SIGTERM) on once the child listens for it.

    The runner starts the guardian with SIGTERM blocked, so a stop that comes while the guardian
    is still starting waits for this handler instead of killing it; the child (a Python process
    that installs its SIGTERM handler during its own start-up) gets the stop once ``catches``
    shows its handler, or after ``STOP_DELIVERY_WAIT_SECONDS`` in any case.
    """
    stop_requested = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop_requested.set())
    signal.signal(PARENT_DIED_SIGNAL, _kill_own_group)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
    set_parent_death_signal(PARENT_DIED_SIGNAL)
    if os.getppid() != parent_pid:  # the runtime died before prctl took effect
        _kill_own_group()
    child = subprocess.Popen(command)
    started = time.monotonic()
    forwarded = False
    while child.poll() is None:
        if stop_requested.is_set() and not forwarded:
            waited = time.monotonic() - started
            if catches(child.pid, signal.SIGTERM) or waited > STOP_DELIVERY_WAIT_SECONDS:
                child.send_signal(signal.SIGTERM)
                forwarded = True
        if forwarded:
            time.sleep(0.2)
        else:
            stop_requested.wait(timeout=0.02)
    code = child.wait()
    if code < 0:  # killed by a signal: end the same way, so the runner sees what the child saw
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    return code


def _marked_with(pid: int, marker: bytes) -> bool:
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:  # gone, or not ours
        return False
    return marker in environ.split(b"\0")


def end_leftover_processes(work_root: Path) -> list[int]:
    """Kill every process still running for ``work_root`` (left over from a runtime that died);
    returns their pids. Linux (/proc); elsewhere nothing is found."""
    proc = Path("/proc")
    if not proc.is_dir():
        return []
    marker = f"{MARKER_VARIABLE}={work_root.resolve()}".encode()
    own = os.getpid()
    found = [int(p.name) for p in proc.iterdir() if p.name.isdigit() and int(p.name) != own]
    killed = []
    for pid in found:
        if _marked_with(pid, marker):
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except ProcessLookupError:
                pass
    return killed


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print("usage: python -m local_runtime.child_processes <parent pid> -- <command...>", file=sys.stderr)
        return 2
    return run_guardian(int(argv[0]), argv[2:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""``loractl local serve`` runs the local runtime's own command as a child; loractl never imports it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from loractl import commands
from loractl.main import main, serve_arguments

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["local", "serve", "--port", "0"], ["--port", "0"]),
        (["--endpoint", "http://x", "local", "serve"], []),
        (["-ojson", "--profile=p", "local", "serve", "--help"], ["--help"]),
        (["--output", "json", "local", "serve", "--verbose"], ["--verbose"]),
        (["models", "list"], None),
        (["--profile", "local", "models", "list"], None),
    ],
)
def test_the_arguments_after_local_serve_are_the_runtimes(
    argv: list[str], expected: list[str] | None
) -> None:
    assert serve_arguments(argv) == expected


def test_local_serve_starts_the_runtime_command_and_returns_its_exit_code(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    started: list[list[str]] = []

    class Child:
        def __init__(self, command: list[str], **_: Any) -> None:
            started.append(command)

        def wait(self) -> int:
            return 3

        def terminate(self) -> None:
            raise AssertionError("not signalled")

    monkeypatch.setattr(commands.subprocess, "Popen", Child)
    assert main(["--endpoint", "http://x", "local", "serve", "--port", "0", "--no-cli-config"]) == 3
    assert started == [[sys.executable, "-m", "local_runtime", "serve", "--port", "0", "--no-cli-config"]]


def test_the_cli_imports_nothing_of_the_local_runtime() -> None:
    probe = (
        "import sys, loractl.main as m; m.build_parser(); "
        "print(sorted(n for n in sys.modules if n.split('.')[0] == 'local_runtime'))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"

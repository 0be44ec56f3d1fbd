"""Run loractl in-process against a running local runtime and parse its ``--json`` output."""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import dataclass
from typing import Any

from loractl.main import main as loractl
from tests.e2e.conftest import RunningRuntime


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def data(self) -> Any:
        return json.loads(self.stdout)


def run_cli(runtime: RunningRuntime, *arguments: str, user: str = "local") -> CliResult:
    out, err = io.StringIO(), io.StringIO()
    connection = ["--endpoint", runtime.api_url, "--token", runtime.token(user), "--json"]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = loractl([*arguments, *connection])
    return CliResult(code, out.getvalue(), err.getvalue())

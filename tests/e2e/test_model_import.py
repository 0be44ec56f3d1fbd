"""A model imported from a URL through the local runtime: the API hands the fetch to the tasks
function (the local Lambda Invoke endpoint), which streams it into the bucket and checks it."""

from __future__ import annotations

import functools
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.e2e.cli_helpers import run_cli
from tests.e2e.conftest import RuntimeLauncher
from tests.integration.test_gated_import import TOKEN, GatedServer
from tests.integration.workflow import checkpoint_bytes


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def test_import_from_a_url_then_download_the_same_bytes(runtimes: RuntimeLauncher, tmp_path: Path) -> None:
    served = tmp_path / "served"
    served.mkdir()
    (served / "base-model.safetensors").write_bytes(checkpoint_bytes(extra_bytes=4096))
    (served / "not-a-model.safetensors").write_bytes(b"plain text, not safetensors")
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(served)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        runtime = runtimes.start()
        imported = run_cli(
            runtime, "models", "import", f"{base}/base-model.safetensors", "--fm-type", "sd15", "--wait"
        )
        assert imported.exit_code == 0, imported.stderr
        assert imported.data["status"] == "ready" and imported.data["filename"] == "base-model.safetensors"
        downloaded = run_cli(runtime, "models", "download", imported.data["id"], str(tmp_path / "dl"))
        assert downloaded.exit_code == 0, downloaded.stderr
        assert Path(downloaded.data["path"]).read_bytes() == (served / "base-model.safetensors").read_bytes()

        bad = run_cli(
            runtime, "models", "import", f"{base}/not-a-model.safetensors", "--fm-type", "sd15", "--wait"
        )
        assert bad.exit_code == 3 and bad.data["status"] == "failed" and bad.data["failure_reason"], bad.data
    finally:
        server.shutdown()


def test_a_gated_import_with_a_token_from_the_environment_leaves_no_trace_of_it(
    runtimes: RuntimeLauncher, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`loractl models import --token-env`: the token opens the gate, and no file the local
    runtime writes (its log, its state snapshot, its job folders) holds it afterwards."""
    gated = GatedServer()
    try:
        runtime = runtimes.start()
        monkeypatch.setenv("HF_TOKEN", TOKEN)
        url = gated.url("/gated.safetensors")
        imported = run_cli(
            runtime, "models", "import", url, "--fm-type", "sd15", "--token-env", "HF_TOKEN", "--wait"
        )
        assert imported.exit_code == 0, imported.stderr
        assert imported.data["status"] == "ready", imported.data
        assert gated.authorizations == [f"Bearer {TOKEN}"]
        assert TOKEN not in imported.stdout + imported.stderr
        runtime.stop()  # writes the state snapshot
        holding = [
            str(path)
            for path in runtime.data_dir.rglob("*")
            if path.is_file() and TOKEN.encode() in path.read_bytes()
        ]
        assert holding == [], f"the access token is in {holding}"

        monkeypatch.delenv("HF_TOKEN")
        unset = run_cli(runtime, "models", "import", url, "--fm-type", "sd15", "--token-env", "HF_TOKEN")
        assert unset.exit_code != 0 and "HF_TOKEN" in unset.stderr
    finally:
        gated.server.shutdown()

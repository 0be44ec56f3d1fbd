"""A model imported from a URL through the local runtime: the API hands the fetch to the tasks
function (the local Lambda Invoke endpoint), which streams it into the bucket and checks it."""

from __future__ import annotations

import functools
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.e2e.cli_helpers import run_cli
from tests.e2e.conftest import RuntimeLauncher
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

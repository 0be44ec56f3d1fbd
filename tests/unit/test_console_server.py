"""The console server's guards and proxy, over real HTTP on loopback with a recording API client.

Who may drive the console: only the browser that opened this launch's secret URL (cookie), only
under this server's own Host (DNS rebinding), and writes only from its own Origin (CSRF).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from functions.domain.families import FAMILIES, FmType
from loractl.client import ApiError
from loractl.config import Connection
from loractl.console.server import COOKIE_NAME, STATIC_FILES, ConsoleServer, instance_catalogue


class RecordingClient:
    """Stands in for loractl's ApiClient: records each call and answers from a script."""

    def __init__(self) -> None:
        self.connection = Connection("https://abc.execute-api.eu-west-1.amazonaws.com/prod")
        self.calls: list[tuple[str, str, Any, dict[str, Any], dict[str, str]]] = []
        self.error: ApiError | None = None

    def request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        self.calls.append((method, path, body, params or {}, headers or {}))
        if self.error:
            raise self.error
        return {"items": [], "next_token": None}

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params)


@pytest.fixture
def console() -> Iterator[tuple[ConsoleServer, RecordingClient]]:
    client = RecordingClient()
    server = ConsoleServer(client, port=0).start()  # type: ignore[arg-type]
    yield server, client
    server.stop()


@contextlib.contextmanager
def logged_in(server: ConsoleServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url) as http:
        answer = http.get(server.login_url.removeprefix(server.base_url))
        assert answer.status_code == 303 and answer.headers["location"] == "/#/trainings"
        yield http


def test_it_listens_on_loopback_only(console: tuple[ConsoleServer, RecordingClient]) -> None:
    server, _ = console
    assert server.login_url.startswith("http://127.0.0.1:")
    assert server._httpd.server_address[0] == "127.0.0.1"


def test_the_secret_is_swapped_for_a_strict_http_only_cookie(
    console: tuple[ConsoleServer, RecordingClient],
) -> None:
    server, _ = console
    with httpx.Client(base_url=server.base_url) as http:
        assert http.get("/login?secret=wrong").status_code == 403
        assert http.get("/login").status_code == 403
        answer = http.get(server.login_url.removeprefix(server.base_url))
        cookie = answer.headers["set-cookie"]
        assert cookie.startswith(f"{COOKIE_NAME}=") and server.secret not in cookie
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        assert answer.headers["referrer-policy"] == "no-referrer"


def test_without_the_cookie_nothing_is_served_or_forwarded(
    console: tuple[ConsoleServer, RecordingClient],
) -> None:
    server, client = console
    with httpx.Client(base_url=server.base_url) as http:
        assert http.get("/").status_code == 401
        assert http.get("/api/trainings").status_code == 401
        assert http.get("/console/session").status_code == 401
        http.cookies.set(COOKIE_NAME, "guessed")
        assert http.get("/api/models").status_code == 401
    assert client.calls == []


def test_a_foreign_host_header_is_refused_even_with_the_cookie(
    console: tuple[ConsoleServer, RecordingClient],
) -> None:
    server, client = console
    with logged_in(server) as http:
        rebound = http.get("/api/trainings", headers={"Host": f"attacker.example:{server.port}"})
        assert rebound.status_code == 421
        assert http.get("/api/trainings", headers={"Host": f"localhost:{server.port}"}).status_code == 200
    assert [c[1] for c in client.calls] == ["/trainings"]


def test_writes_need_this_servers_origin(console: tuple[ConsoleServer, RecordingClient]) -> None:
    server, client = console
    with logged_in(server) as http:
        for origin in ({}, {"Origin": "https://evil.example"}, {"Origin": "null"}):
            answer = http.post("/api/trainings/x/stop", json={}, headers=origin)
            assert answer.status_code == 403, origin
            assert http.delete("/api/trainings/x", headers=origin).status_code == 403
        cross_read = http.get("/api/trainings", headers={"Origin": "https://evil.example"})
        assert cross_read.status_code == 403
        assert client.calls == []
        same = {"Origin": server.base_url, "Idempotency-Key": "key-1"}
        assert http.post("/api/trainings", json={"name": "a"}, headers=same).status_code == 200
    assert client.calls == [("POST", "/trainings", {"name": "a"}, {}, {"Idempotency-Key": "key-1"})]


def test_the_proxy_forwards_only_api_paths_and_passes_errors_through(
    console: tuple[ConsoleServer, RecordingClient],
) -> None:
    server, client = console
    with logged_in(server) as http:
        assert http.get("/api/admin/secrets").status_code == 404
        assert http.get("/api/trainings/../../etc").status_code == 404
        assert http.get("/api/trainings", params={"status": "COMPLETED"}).json() == {
            "items": [],
            "next_token": None,
        }
        client.error = ApiError(
            400, "INVALID_INPUT", "bad", [{"field": "config.network_dim", "problem": "x"}]
        )
        refused = http.post("/api/configs/validate", json={}, headers={"Origin": server.base_url})
        assert refused.status_code == 400
        assert refused.json()["error"]["details"] == [{"field": "config.network_dim", "problem": "x"}]
        not_json = http.post("/api/configs/validate", content=b"[1]", headers={"Origin": server.base_url})
        assert not_json.status_code == 400
    assert client.calls[0] == ("GET", "/trainings", None, {"status": "COMPLETED"}, {})


def test_pages_ship_in_the_package_with_a_strict_content_security_policy(
    console: tuple[ConsoleServer, RecordingClient],
) -> None:
    server, _ = console
    with logged_in(server) as http:
        for name in STATIC_FILES:
            answer = http.get("/" if name == "index.html" else f"/static/{name}")
            assert answer.status_code == 200 and answer.content, name
            assert "script-src 'self'" in answer.headers["content-security-policy"]
            assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
        assert http.get("/static/../server.py").status_code == 404
        session = http.get("/console/session").json()
    assert session["auth"] == "sigv4" and session["endpoint"].startswith("https://")
    assert {row["name"] for row in session["instances"]} == {row["name"] for row in instance_catalogue()}
    # Every form's family choices come from here (pages.js holds no family of its own).
    assert [f["fm_type"] for f in session["families"]] == [fm.value for fm in FAMILIES]
    assert all(f["name"] and f["native_side"] > 0 for f in session["families"])
    # The training form's component fields and the upload form's roles come from the same table.
    slots = {f["fm_type"]: {c["role"]: c["required"] for c in f["components"]} for f in session["families"]}
    assert slots["flux1"] == {"ae": True, "clip_l": True, "t5xxl": True}
    # SD 3.5 needs a component only when its checkpoint lacks that text encoder
    assert slots["sd35"] == {"clip_l": False, "clip_g": False, "t5xxl": False}
    assert slots["sd15"] == slots["sdxl"] == {}
    assert session["component_roles"] == ["ae", "clip_l", "clip_g", "t5xxl"]


def test_the_console_pages_name_no_family_of_their_own() -> None:
    """A new family appears in every form without editing the page (issue 17)."""
    static = Path(__file__).resolve().parents[2] / "loractl" / "console" / "static"
    for script in static.glob("*.js"):
        text = script.read_text()
        for fm in FAMILIES:
            assert f'"{fm.value}"' not in text, f"{script.name} hard-codes the family {fm.value}"


def test_the_instance_catalogue_names_gpu_memory_price_and_families() -> None:
    rows = instance_catalogue()
    assert rows and all(row["gpu_memory_gb"] > 0 and row["price_per_hour_usd"] > 0 for row in rows)
    assert all(row["memory_gib"] >= 16 for row in rows)  # host memory, which FLUX.1 needs 32 GiB of
    assert [r["price_per_hour_usd"] for r in rows] == sorted(r["price_per_hour_usd"] for r in rows)
    assert all(set(row["families"]) <= {fm.value for fm in FmType} for row in rows)
    g5 = {row["name"]: row["families"] for row in rows}
    assert "flux1" not in g5["ml.g5.xlarge"] and "flux1" in g5["ml.g5.2xlarge"]  # 16 vs 32 GiB
    # SDXL needs >= 24 GB (functions.domain.catalog.MIN_GPU_MEMORY_GB): no smaller GPU offers it.
    assert all(row["gpu_memory_gb"] >= 24 for row in rows if "sdxl" in row["families"])


def test_loractl_console_prints_a_loopback_url_with_the_secret_and_serves_it(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "loractl.main", "console", "--no-browser"]
    command += ["--endpoint", "http://127.0.0.1:9", "--token", "t"]  # port 9: nothing listens
    env = {**os.environ, "LORACTL_CONFIG": str(tmp_path / "none.toml"), "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(2)]
        url = lines[1].split()[-1]
        assert url.startswith("http://127.0.0.1:") and "/login?secret=" in url, lines
        with httpx.Client() as http:
            assert http.get(url).status_code == 303
            # The API is down: the page gets a 502 naming the connection problem, not a hang.
            answer = http.get(url.split("/login")[0] + "/api/trainings")
            assert answer.status_code == 502 and answer.json()["error"]["code"] == "CONNECTION_ERROR"
    finally:
        process.terminate()
        process.wait(timeout=10)

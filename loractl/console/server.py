"""The console's HTTP server: loopback only, one secret per launch, and a proxy to the REST API.

Why a local proxy and not the API from the browser: the API is signed with SigV4 from the user's
AWS credential chain (a deployed stack) or takes the local runtime's bearer token. Both stay in
this process: the browser holds only a session cookie for this server, and each ``/api/...``
request is re-sent with loractl's own :class:`~loractl.client.ApiClient` (the CLI's signing).

File bytes do not pass through here: the pages PUT model parts and dataset files straight to the
presigned S3 URLs the API issues, as the CLI does. The stack's bucket CORS allows that and exposes
the ``ETag`` a multipart completion needs (infrastructure/constructs/storage.py), and so does the
local runtime's emulated bucket (local_runtime/aws_emulator.py ``BUCKET_CORS``); large checkpoints
then go from the browser to S3 once, not through a second local hop. Downloads are the exception
(``/console/download/...``): they are streamed through so the browser gets a file with its name
(a cross-origin presigned GET cannot be given a download name by the page).

Who may drive it (a page on another site, another local user, a DNS-rebinding attack):
- it binds 127.0.0.1 only;
- the URL it opens carries a random per-launch secret; ``/login`` swaps it for an HttpOnly,
  SameSite=Strict session cookie, and every other path needs that cookie;
- the ``Host`` header must name this server's loopback address and port (a rebound DNS name
  reaches the socket with its own Host and is refused);
- a request that changes anything (POST, DELETE) must carry an ``Origin`` of this server
  (a cross-site form or fetch is refused even if the browser sent the cookie).
"""

from __future__ import annotations

import json
import logging
import mimetypes
import re
import secrets
import threading
from dataclasses import asdict
from http import HTTPStatus
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import httpx

from functions.domain.catalog import INSTANCE_TYPES, MIN_GPU_MEMORY_GB, FmType, instance_fits
from functions.domain.families import FAMILIES, ComponentRole
from loractl import api_shapes
from loractl.client import ApiClient, ApiConnectionError, ApiError

logger = logging.getLogger("loractl.console")

LOOPBACK = "127.0.0.1"
COOKIE_NAME = "loractl_console"
MAX_JSON_BODY_BYTES = 4 * 1024 * 1024  # dataset declarations of many thousand files stay below this
# The API's resources; anything else under /api/ is refused here rather than forwarded.
API_PATH = re.compile(r"^/(models|datasets|configs|trainings)(/[A-Za-z0-9_.-]+){0,3}$")
FORWARDED_HEADERS = ("Idempotency-Key",)
DOWNLOAD_PATH = re.compile(r"^/console/download/models/([A-Za-z0-9_-]+)$")
STATIC_FILES = frozenset({"index.html", "console.css", "console.js", "api.js", "pages.js", "zip.js"})
# The pages load only their own scripts; images and uploads go to the presigned S3 URLs.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data: http: https:; "
    "connect-src 'self' http: https:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)
DOWNLOAD_TIMEOUT = httpx.Timeout(300.0, connect=15.0)


def instance_catalogue() -> list[dict[str, Any]]:
    """The instance types the service launches, with GPU and host memory and list price
    (functions.domain.catalog, the same table the API validates against; a deployment's price
    overrides show in the plan)."""
    rows = []
    for instance in INSTANCE_TYPES.values():
        row = asdict(instance)
        row["families"] = [fm.value for fm in FmType if instance_fits(instance, fm)]
        rows.append(row)
    return sorted(rows, key=lambda r: (r["price_per_hour_usd"], r["name"]))


class ConsoleServer:
    """The console on ``127.0.0.1:<port>`` in a background thread, talking to ``client``'s API."""

    def __init__(self, client: ApiClient, port: int = 0) -> None:
        self.client = client
        self.secret = secrets.token_urlsafe(32)
        self.session = secrets.token_urlsafe(32)
        handler = type("BoundConsoleHandler", (ConsoleHandler,), {"console": self})
        self._httpd = ThreadingHTTPServer((LOOPBACK, port), handler)
        self._httpd.daemon_threads = True
        self.port = int(self._httpd.server_address[1])
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def login_url(self) -> str:
        """The URL to open: it carries the per-launch secret (print it only to the user's terminal)."""
        return f"{self.base_url}/login?secret={quote(self.secret)}"

    def allowed_hosts(self) -> frozenset[str]:
        return frozenset({f"{LOOPBACK}:{self.port}", f"localhost:{self.port}"})

    def allowed_origins(self) -> frozenset[str]:
        return frozenset(f"http://{host}" for host in self.allowed_hosts())

    def start(self) -> ConsoleServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="loractl-console", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._httpd.serve_forever()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


class ConsoleHandler(BaseHTTPRequestHandler):
    """One request: the guards first, then static pages, the API proxy or a download."""

    console: ConsoleServer
    server_version = "loractl-console"
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s %s", self.address_string(), format % args)

    # --- guards ---------------------------------------------------------------------------

    def _host_ok(self) -> bool:
        return self.headers.get("Host", "") in self.console.allowed_hosts()

    def _origin_ok(self) -> bool:
        """State-changing requests must come from this server's own pages."""
        if self.command in ("GET", "HEAD"):
            origin = self.headers.get("Origin")
            return origin is None or origin in self.console.allowed_origins()
        return self.headers.get("Origin", "") in self.console.allowed_origins()

    def _has_session(self) -> bool:
        cookie = SimpleCookie(self.headers.get("Cookie", ""))
        morsel = cookie.get(COOKIE_NAME)
        return morsel is not None and secrets.compare_digest(morsel.value, self.console.session)

    def _guarded(self) -> bool:
        """True when the request may go on; otherwise the refusal has been sent."""
        if not self._host_ok():
            self._send_json(HTTPStatus.MISDIRECTED_REQUEST, _error("BAD_HOST", "unexpected Host header"))
            return False
        if not self._origin_ok():
            self._send_json(HTTPStatus.FORBIDDEN, _error("BAD_ORIGIN", "cross-origin request refused"))
            return False
        path = urlsplit(self.path).path
        if path == "/login" or self._has_session():
            return True
        if path == "/":
            self._send_text(HTTPStatus.UNAUTHORIZED, NO_SESSION_PAGE, "text/html; charset=utf-8")
        else:
            self._send_json(HTTPStatus.UNAUTHORIZED, _error("NO_SESSION", "open the URL loractl printed"))
        return False

    # --- verbs ----------------------------------------------------------------------------

    def do_GET(self) -> None:
        if not self._guarded():
            return
        parts = urlsplit(self.path)
        if parts.path == "/login":
            self._login(dict(parse_qsl(parts.query)).get("secret", ""))
        elif parts.path == "/":
            self._static("index.html")
        elif parts.path.startswith("/static/"):
            self._static(parts.path.removeprefix("/static/"))
        elif parts.path == "/console/session":
            self._send_json(HTTPStatus.OK, self._session_info())
        elif match := DOWNLOAD_PATH.match(parts.path):
            self._download(match.group(1), dict(parse_qsl(parts.query)).get("epoch"))
        elif parts.path.startswith("/api/"):
            self._proxy(parts.path.removeprefix("/api"), parts.query)
        else:
            self._send_json(HTTPStatus.NOT_FOUND, _error("NOT_FOUND", parts.path))

    def do_POST(self) -> None:
        self._write_verb()

    def do_DELETE(self) -> None:
        self._write_verb()

    def _write_verb(self) -> None:
        if not self._guarded():
            return
        parts = urlsplit(self.path)
        if not parts.path.startswith("/api/"):
            self._send_json(HTTPStatus.NOT_FOUND, _error("NOT_FOUND", parts.path))
            return
        self._proxy(parts.path.removeprefix("/api"), parts.query)

    # --- handlers -------------------------------------------------------------------------

    def _login(self, offered: str) -> None:
        if not secrets.compare_digest(offered.encode(), self.console.secret.encode()):
            self._send_json(HTTPStatus.FORBIDDEN, _error("BAD_SECRET", "this link is not this launch's"))
            return
        self.send_response(HTTPStatus.SEE_OTHER)
        self.send_header(
            "Set-Cookie", f"{COOKIE_NAME}={self.console.session}; HttpOnly; SameSite=Strict; Path=/"
        )
        self.send_header("Location", "/#/trainings")  # the secret leaves the address bar at once
        self.send_header("Content-Length", "0")
        self._common_headers()
        self.end_headers()

    def _static(self, name: str) -> None:
        if name not in STATIC_FILES:
            self._send_json(HTTPStatus.NOT_FOUND, _error("NOT_FOUND", name))
            return
        data = resources.files("loractl.console").joinpath("static", name).read_bytes()
        kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
        if kind.startswith("text/") or kind.endswith("javascript"):
            kind += "; charset=utf-8"
        self._send_bytes(HTTPStatus.OK, data, kind)

    def _session_info(self) -> dict[str, Any]:
        connection = self.console.client.connection
        return {
            "endpoint": connection.endpoint,
            "auth": "sigv4" if connection.uses_sigv4 else "token",
            "instances": instance_catalogue(),
            "min_gpu_memory_gb": {fm.value: gb for fm, gb in MIN_GPU_MEMORY_GB.items()},
            # The family choices of every form, from the one table of families (never in the page).
            "families": [
                {
                    "fm_type": spec.fm_type.value,
                    "name": spec.display_name,
                    "native_side": spec.native_side,
                    # FLUX.1 / SD 3.5: the separate files a job names (``components.<role>``)
                    "components": [
                        {"role": slot.role.value, "description": slot.description, "required": slot.required}
                        for slot in spec.components
                    ],
                }
                for spec in FAMILIES.values()
            ],
            # what an upload or import may be instead of a family's main checkpoint (``component``)
            "component_roles": [role.value for role in ComponentRole],
        }

    def _proxy(self, path: str, query: str) -> None:
        if not API_PATH.match(path):
            self._send_json(HTTPStatus.NOT_FOUND, _error("NOT_FOUND", f"no API path {path}"))
            return
        body: dict[str, Any] | None = None
        if self.command == "POST":
            parsed = self._json_body()
            if parsed is None:
                return
            body = parsed
        headers = {name: self.headers[name] for name in FORWARDED_HEADERS if self.headers.get(name)}
        try:
            result = self.console.client.request(
                self.command, path, body=body, params=dict(parse_qsl(query)), headers=headers
            )
        except ApiError as error:
            payload = {"error": {"code": error.code, "message": error.message, "details": error.details}}
            self._send_json(error.status, payload)
            return
        except ApiConnectionError as error:
            self._send_json(HTTPStatus.BAD_GATEWAY, _error("CONNECTION_ERROR", str(error)))
            return
        self._send_json(HTTPStatus.OK, result)

    def _json_body(self) -> dict[str, Any] | None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_JSON_BODY_BYTES:
            self._send_json(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE, _error("TOO_LARGE", "request body too large")
            )
            return None
        raw = self.rfile.read(length) if length else b"{}"
        try:
            parsed = json.loads(raw or b"{}")
        except ValueError:
            self._send_json(HTTPStatus.BAD_REQUEST, _error("INVALID_JSON", "the body is not JSON"))
            return None
        if not isinstance(parsed, dict):
            self._send_json(HTTPStatus.BAD_REQUEST, _error("INVALID_JSON", "the body must be an object"))
            return None
        return parsed

    def _download(self, model_id: str, epoch: str | None) -> None:
        """Stream a model's file (or one saved epoch of a trained LoRA) as an attachment."""
        params = {"epoch": epoch} if epoch else {}
        try:
            model = self.console.client.get(f"/models/{model_id}", **params)
        except ApiError as error:
            self._send_json(error.status, _error(error.code, error.message))
            return
        url, filename = _download_target(model, epoch)
        if not url:
            self._send_json(HTTPStatus.CONFLICT, _error("NOT_READY", "the model has no file to download yet"))
            return
        with httpx.stream("GET", url, timeout=DOWNLOAD_TIMEOUT, follow_redirects=True) as response:
            if response.status_code >= 300:
                self._send_json(
                    HTTPStatus.BAD_GATEWAY, _error("DOWNLOAD_FAILED", f"S3: {response.status_code}")
                )
                return
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Disposition", f'attachment; filename="{filename}"')
            if response.headers.get("Content-Length"):
                self.send_header("Content-Length", response.headers["Content-Length"])
            else:
                self.send_header("Connection", "close")
                self.close_connection = True
            self._common_headers()
            self.end_headers()
            for chunk in response.iter_bytes(1024 * 1024):
                self.wfile.write(chunk)

    # --- responses ------------------------------------------------------------------------

    def _common_headers(self) -> None:
        self.send_header("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")  # the login URL's secret never leaks onward
        self.send_header("Cache-Control", "no-store")

    def _send_bytes(self, status: int, data: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        if status >= 400:  # a refused request's body may be unread: never parse it as the next request
            self.send_header("Connection", "close")
            self.close_connection = True
        self._common_headers()
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _send_text(self, status: int, text: str, content_type: str) -> None:
        self._send_bytes(status, text.encode("utf-8"), content_type)

    def _send_json(self, status: int, payload: Any) -> None:
        self._send_bytes(status, json.dumps(payload).encode("utf-8"), "application/json")


def _download_target(model: dict[str, Any], epoch: str | None) -> tuple[str | None, str]:
    """The presigned URL and file name of the model's file, or of the asked-for epoch's version
    (``GET /models/{id}?epoch=N`` answers that version's URL, as ``loractl models download`` reads it)."""
    version = api_shapes.model_version(model, int(epoch)) if epoch and epoch.isdigit() else None
    filename = str((version or model).get("filename") or f"{model.get('id', 'model')}.safetensors")
    return api_shapes.download_url(model), filename.replace('"', "")


def _error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": []}}


NO_SESSION_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>loractl console</title>
</head><body><h1>Open the link loractl printed</h1>
<p>This console only answers the browser that opened the link with this launch's secret
(<code>loractl console</code> prints it, and so does <code>make serve</code>).</p></body></html>
"""

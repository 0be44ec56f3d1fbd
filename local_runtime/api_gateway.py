"""The local API Gateway: HTTP requests in, REST API (v1) proxy events to the API handler, out.

The same handler code as in AWS receives the same event shape: method, path, single- and
multi-value query parameters and headers, body (base64 for binary media), and a
``requestContext`` with the stage, a request id and ``identity.userArn`` — the caller, which the
local bearer token stands in for (see ``local_auth``).
"""

from __future__ import annotations

import base64
import json
import logging
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from functions.domain.errors import Unauthenticated
from local_runtime.lambda_invoker import LocalLambdaFunction
from local_runtime.local_auth import LocalTokens
from local_runtime.loopback_server import LoopbackServer
from local_runtime.sagemaker_jobs import ACCOUNT_ID

logger = logging.getLogger("local_runtime.api")

API_ID = "localapi"
STAGE = "local"
MAX_PAYLOAD_BYTES = 10 * 1024 * 1024  # API Gateway's request payload limit
TEXT_MEDIA_TYPES = ("application/json", "text/", "application/xml", "application/x-www-form-urlencoded")
UNAUTHORIZED_BODY = {
    "error": {
        "code": Unauthenticated.code,  # the API's own 401 code
        "message": "missing or unknown bearer token: send 'Authorization: Bearer <token>' "
        "(the local runtime prints the token at start and writes it to the loractl config)",
        "details": [],
    }
}


def _error_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": []}}


def _is_text(content_type: str | None) -> bool:
    return content_type is None or content_type.lower().startswith(TEXT_MEDIA_TYPES)


def declared_length(value: str | None) -> int | None:
    """The body length a request declares (0 without the header), or None when unreadable.

    RFC 9110 section 8.6: ``Content-Length = 1*DIGIT``. ``int()`` alone would take ``-1`` (and then
    read to end of stream, hanging the connection), ``+5`` or `` 5``, and raise on ``abc``/``1e3``.
    """
    if value is None:
        return 0
    text = value.strip()
    if not (text.isascii() and text.isdigit()):
        return None
    return int(text)


def build_proxy_event(
    method: str,
    target: str,
    headers: list[tuple[str, str]],
    body: bytes,
    owner: str | None,
    source_ip: str = "127.0.0.1",
) -> dict[str, Any]:
    """An API Gateway REST API proxy-integration event for one HTTP request."""
    split = urlsplit(target)
    path = unquote(split.path) or "/"
    multi_query = parse_qs(split.query, keep_blank_values=True)
    multi_headers: dict[str, list[str]] = {}
    for name, value in headers:
        multi_headers.setdefault(name, []).append(value)
    content_type = next((v for k, v in headers if k.lower() == "content-type"), None)
    encode = bool(body) and not _is_text(content_type)
    if body and not encode:
        try:
            text_body: str | None = body.decode("utf-8")
        except UnicodeDecodeError:
            encode = True
    if encode:
        text_body = base64.b64encode(body).decode("ascii")
    elif not body:
        text_body = None
    now = time.time()
    return {
        "resource": "/{proxy+}",
        "path": path,
        "httpMethod": method,
        "headers": {name: values[-1] for name, values in multi_headers.items()},
        "multiValueHeaders": multi_headers,
        "queryStringParameters": {k: v[-1] for k, v in multi_query.items()} or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": {"proxy": path.lstrip("/")} if path != "/" else None,
        "stageVariables": None,
        "requestContext": {
            "resourceId": "local",
            "resourcePath": "/{proxy+}",
            "httpMethod": method,
            "extendedRequestId": str(uuid.uuid4()),
            "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "requestTimeEpoch": int(now * 1000),
            "path": f"/{STAGE}{path}",
            "accountId": ACCOUNT_ID,
            "protocol": "HTTP/1.1",
            "stage": STAGE,
            "domainPrefix": API_ID,
            "domainName": "localhost",
            "requestId": str(uuid.uuid4()),
            "apiId": API_ID,
            "identity": {
                "accountId": ACCOUNT_ID if owner else None,
                "caller": owner,
                "user": owner,
                "userArn": owner,
                "sourceIp": source_ip,
                "userAgent": next((v for k, v in headers if k.lower() == "user-agent"), None),
                "accessKey": None,
                "cognitoIdentityId": None,
                "cognitoIdentityPoolId": None,
                "cognitoAuthenticationType": None,
                "cognitoAuthenticationProvider": None,
                "principalOrgId": None,
                "apiKey": None,
                "apiKeyId": None,
            },
        },
        "body": text_body,
        "isBase64Encoded": encode,
    }


def proxy_response_parts(response: dict[str, Any]) -> tuple[int, list[tuple[str, str]], bytes]:
    """Status, headers and body bytes from a Lambda proxy-integration response."""
    status = int(response.get("statusCode", 200))
    headers: list[tuple[str, str]] = []
    multi = response.get("multiValueHeaders") or {}
    for name, values in multi.items():
        headers.extend((name, str(value)) for value in values)
    for name, value in (response.get("headers") or {}).items():
        if name not in multi:
            headers.append((name, str(value)))
    raw = response.get("body") or ""
    body = base64.b64decode(raw) if response.get("isBase64Encoded") else str(raw).encode("utf-8")
    return status, headers, body


class _ApiHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: LocalApiServer

    def log_message(self, format: str, *args: Any) -> None:
        logger.info("api %s", format % args)

    def do_GET(self) -> None:
        self._handle()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET  # noqa: N815

    def __getattr__(self, name: str) -> Any:
        """Any other method (TRACE, QUERY, ...) reaches the API too, which answers 405 like API Gateway's
        routing would refuse it, instead of http.server's 501."""
        if name.startswith("do_") and name[3:].isalpha() and name[3:].isupper():
            return self.do_GET
        raise AttributeError(name)

    def _handle(self) -> None:
        length = declared_length(self.headers.get("Content-Length"))
        if length is None:
            # An unreadable length leaves no way to find the end of the body: answer and close.
            self.close_connection = True
            self._send_json(
                400,
                _error_body("INVALID_INPUT", "Content-Length must be a non-negative decimal integer"),
            )
            return
        if length > MAX_PAYLOAD_BYTES:
            self.close_connection = True
            self._send_json(
                413,
                _error_body("PAYLOAD_TOO_LARGE", f"request bodies are limited to {MAX_PAYLOAD_BYTES} bytes"),
            )
            return
        body = self.rfile.read(length) if length else b""
        owner = self.server.tokens.owner_for(self.headers.get("Authorization"))
        # Preflight requests carry no credentials; API Gateway answers them without the authoriser.
        if owner is None and self.command != "OPTIONS":
            self._send_json(401, UNAUTHORIZED_BODY)
            return
        event = build_proxy_event(
            self.command, self.path, list(self.headers.items()), body, owner, self.client_address[0]
        )
        try:
            response = self.server.function.invoke(event)
        except Exception:
            # API Gateway's answer when the integration crashes.
            logger.exception("API handler raised for %s %s", self.command, self.path)
            self._send_json(502, {"message": "Internal server error"})
            return
        finally:
            if self.command not in ("GET", "HEAD", "OPTIONS"):
                self.server.after_mutation()
        status, headers, payload = proxy_response_parts(response)
        self._send(status, headers, payload)

    def _send_json(self, status: int, payload: dict[str, Any]) -> None:
        self._send(status, [("Content-Type", "application/json")], json.dumps(payload).encode("utf-8"))

    def _send(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers:
            if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


class LocalApiServer(LoopbackServer):
    """The HTTP listener of the local API."""

    thread_name = "local-api"

    def __init__(
        self,
        function: LocalLambdaFunction,
        tokens: LocalTokens,
        host: str = "127.0.0.1",
        port: int = 0,
        after_mutation: Callable[[], None] = lambda: None,
    ) -> None:
        super().__init__(_ApiHandler, host, port)
        self.function = function
        self.tokens = tokens
        self.after_mutation = after_mutation

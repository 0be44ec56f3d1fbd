"""GET a URL for a model import, connecting only to addresses the rules allow.

Each hop (the URL, then every redirect, at most ``MAX_REDIRECTS``) is checked with the outbound
URL rules, its host resolved once, every resolved address checked, and the connection made to
that checked address — so a DNS answer that changes between the check and the connection (DNS
rebinding) cannot reach a private address. TLS still verifies the certificate against the host
name (SNI and hostname checking on the pinned socket). The standard library only: the Lambda
runtime has nothing else this needs.
"""

from __future__ import annotations

import http.client
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

from functions.domain.model_import import MAX_REDIRECTS, SOURCE_FIELD
from functions.domain.outbound_urls import address_problem, outbound_url_problems

USER_AGENT = "lora-on-aws-model-import/1"
CONNECT_TIMEOUT_SECONDS = 30.0
Resolve = Callable[[str], list[str]]


class FetchRefused(Exception):
    """The URL, a redirect or the answer is not acceptable; the message says why."""


@dataclass
class OpenedUrl:
    url: str  # after redirects
    response: http.client.HTTPResponse
    connection: http.client.HTTPConnection

    @property
    def content_length(self) -> int | None:
        value = self.response.getheader("Content-Length")
        return int(value) if value and value.isdigit() else None

    def close(self) -> None:
        self.connection.close()


def resolve_host(host: str) -> list[str]:
    return sorted({str(info[4][0]) for info in socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)})


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self) -> None:
        raw = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(raw, server_hostname=self.host)  # type: ignore[attr-defined]


def _checked_address(url: str, *, allow_loopback_http: bool, resolve: Resolve) -> str:
    problems = outbound_url_problems(url, SOURCE_FIELD, allow_loopback_http=allow_loopback_http, resolve=None)
    if problems:
        raise FetchRefused(f"{url}: {problems[0].problem}")
    host = urlsplit(url).hostname or ""
    try:
        addresses = resolve(host)
    except OSError as error:
        raise FetchRefused(f"host {host} does not resolve ({error})") from error
    if not addresses:
        raise FetchRefused(f"host {host} does not resolve")
    for address in addresses:
        problem = address_problem(address, allow_loopback_http)
        if problem:
            raise FetchRefused(f"host {host} resolves to a forbidden address: {problem}")
    return addresses[0]


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port


def open_url(
    url: str,
    *,
    allow_loopback_http: bool,
    resolve: Resolve = resolve_host,
    bearer_token: str | None = None,
) -> OpenedUrl:
    """The open 200 response of ``url`` after at most ``MAX_REDIRECTS`` checked redirects.

    ``bearer_token`` (a gated model's access token) is sent to the URL's own origin only: a
    redirect elsewhere (a hub's CDN with a signed URL) goes without it, as browsers and
    ``requests`` do, so the token never reaches a host the user did not name.
    """
    token_origin = _origin(url)
    for _hop in range(MAX_REDIRECTS + 1):
        address = _checked_address(url, allow_loopback_http=allow_loopback_http, resolve=resolve)
        parts = urlsplit(url)
        secure = parts.scheme == "https"
        port = parts.port or (443 if secure else 80)
        connection_type = _PinnedHTTPSConnection if secure else _PinnedHTTPConnection
        connection = connection_type(parts.hostname or "", port, address, CONNECT_TIMEOUT_SECONDS)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
        if bearer_token is not None and _origin(url) == token_origin:
            headers["Authorization"] = f"Bearer {bearer_token}"
        try:
            connection.request("GET", target, headers=headers)
            response = connection.getresponse()
        except (OSError, http.client.HTTPException) as error:
            connection.close()
            raise FetchRefused(f"could not fetch {url}: {error}") from error
        if response.status in (301, 302, 303, 307, 308) and response.getheader("Location"):
            url = urljoin(url, str(response.getheader("Location")))
            connection.close()
            continue
        if response.status != 200:
            connection.close()
            hint = ""
            if response.status in (401, 403):
                hint = " (a gated model needs access_token, from an account that accepted its licence)"
            raise FetchRefused(f"{url} answered HTTP {response.status} {response.reason}{hint}")
        return OpenedUrl(url, response, connection)
    raise FetchRefused(f"more than {MAX_REDIRECTS} redirects")

"""The local HTTP adapter refuses unreadable Content-Length headers and accepts bursts of clients."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from local_runtime.api_gateway import LocalApiServer, declared_length
from local_runtime.local_auth import LocalTokens


class EchoFunction:
    """Stands in for the API Lambda: answers 200 with the body length it was given."""

    def __init__(self) -> None:
        self.calls = 0
        self.lock = threading.Lock()

    def invoke(self, event: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self.calls += 1
        return {"statusCode": 200, "headers": {"Content-Type": "text/plain"}, "body": "ok"}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[LocalApiServer, str]]:
    tokens = LocalTokens(tmp_path / "tokens.json")
    token = tokens.ensure_user("local")
    api = LocalApiServer(EchoFunction(), tokens)  # type: ignore[arg-type]
    api.start()
    yield api, token
    api.stop()


def _raw_request(address: tuple[str, int], request: bytes) -> bytes:
    with socket.create_connection(address, timeout=5) as sock:
        sock.sendall(request)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:  # no answer at all: what the adapter did before
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)


@pytest.mark.parametrize("value", ["-1", "abc", "1e3", "+5", " ", "0x10", "١٢"])
def test_an_unreadable_content_length_gets_a_400(server: tuple[LocalApiServer, str], value: str) -> None:
    api, token = server
    host, port = api.server_address[:2]
    request = (
        f"POST /models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {value}\r\n\r\n{{}}"
    ).encode()
    answer = _raw_request((str(host), int(port)), request)
    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
    assert b"Content-Length" in answer.split(b"\r\n\r\n", 1)[1]


@pytest.mark.parametrize(("value", "expected"), [(None, 0), ("0", 0), ("12", 12), (" 7 ", 7), ("-1", None)])
def test_declared_length(value: str | None, expected: int | None) -> None:
    assert declared_length(value) == expected


def test_twenty_simultaneous_connections_are_all_answered(tmp_path: Path) -> None:
    """Twenty clients connect while the server is not accepting yet (as when every handler thread
    is busy): they must all wait in the listen backlog, not be dropped (socketserver's default
    backlog of 5 held six and left the rest to time out or be reset)."""
    tokens = LocalTokens(tmp_path / "tokens.json")
    token = tokens.ensure_user("local")
    function = EchoFunction()
    api = LocalApiServer(function, tokens)  # type: ignore[arg-type]
    host, port = api.server_address[:2]
    sockets = []
    try:
        for _ in range(20):
            sockets.append(socket.create_connection((str(host), int(port)), timeout=0.5))
        api.start()
        request = (
            f"GET /models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
        )
        answers = [b""] * len(sockets)

        def talk(index: int) -> None:
            sock = sockets[index]
            sock.settimeout(10)
            sock.sendall(request.encode())
            while chunk := sock.recv(65536):
                answers[index] += chunk

        threads = [threading.Thread(target=talk, args=(i,)) for i in range(len(sockets))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=20)
        assert all(a.startswith(b"HTTP/1.1 200") for a in answers), [a[:40] for a in answers]
        assert function.calls == 20
    finally:
        for sock in sockets:
            sock.close()
        if api._thread is not None:
            api.stop()
        else:
            api.server_close()

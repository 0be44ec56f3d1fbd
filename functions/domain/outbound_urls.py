"""Rules for URLs the service itself calls (webhooks, model imports): no way into private networks.

https only (plain http to loopback only where the deployment allows it, i.e. the local runtime);
no credentials or fragments; an IP literal or every address a host name resolves to must be
public — private, loopback, link-local, shared (100.64/10), reserved, multicast and unspecified
addresses are refused, IPv6 forms that carry an IPv4 address (mapped, 6to4, NAT64) are judged by
that address. Resolution is passed in as a function, so the rules are testable without a network.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

from functions.domain.kohya_params import FieldProblem

MAX_URL_LENGTH = 2048
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
Resolver = Callable[[str], Sequence[str]]  # host name -> IP addresses (raises OSError when unknown)


def _address_problem(address: str, allow_loopback: bool) -> str | None:
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address):  # IPv6 forms that carry an IPv4 address: judge that
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        ip = embedded or ip
    if ip.is_loopback and allow_loopback:
        return None
    if not ip.is_global or ip.is_multicast or ip.is_reserved or ip.is_unspecified:
        return f"must not point at a private, loopback or link-local address ({ip})"
    return None


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True


def outbound_url_problems(
    url: str, field: str, *, allow_loopback_http: bool, resolve: Resolver | None
) -> list[FieldProblem]:
    """Why the service may not call ``url`` ([] when it may), each problem on ``field``.

    https only (http only to loopback, when the deployment allows it: the local runtime); no
    credentials, no fragment, a host name or public IP literal; a host name must not resolve to a
    private, loopback or link-local address (pass ``resolve=None`` to skip DNS, e.g. in a unit
    test of the static rules).
    """
    if len(url) > MAX_URL_LENGTH:
        return [FieldProblem(field, f"must be at most {MAX_URL_LENGTH} characters")]
    if any(ord(char) < 0x21 or ord(char) == 0x7F or char == "\\" for char in url):
        return [FieldProblem(field, "must not contain spaces, control characters or backslashes")]
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return [FieldProblem(field, "is not a valid URL")]
    host = (parts.hostname or "").rstrip(".")
    if parts.scheme not in ("https", "http") or not host:
        return [FieldProblem(field, "must be an https:// URL with a host")]
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        return [FieldProblem(field, "must not contain credentials")]
    if parts.fragment:
        return [FieldProblem(field, "must not contain a fragment")]
    if port == 0:
        return [FieldProblem(field, "must not use port 0")]
    loopback_allowed = allow_loopback_http and (host == "localhost" or _is_loopback_literal(host))
    if parts.scheme == "http" and not loopback_allowed:
        return [FieldProblem(field, "must use https")]
    if host == "localhost" or host.endswith(".localhost"):
        return [] if loopback_allowed else [FieldProblem(field, "must not point at localhost")]
    if _is_ip_literal(host):
        problem = _address_problem(host, allow_loopback_http)
        return [FieldProblem(field, problem)] if problem else []
    if "." not in host:
        return [FieldProblem(field, "must use a fully qualified host name")]
    if resolve is None:
        return []
    return resolved_address_problems(host, field, allow_loopback=allow_loopback_http, resolve=resolve)


def _is_loopback_literal(host: str) -> bool:
    return _is_ip_literal(host) and ipaddress.ip_address(host.split("%", 1)[0]).is_loopback


def resolved_address_problems(
    host: str, field: str, *, allow_loopback: bool, resolve: Resolver
) -> list[FieldProblem]:
    """Every address the host resolves to must be public (a DNS answer cannot smuggle in 10.0.0.1)."""
    try:
        addresses = list(resolve(host))
    except OSError:
        return [FieldProblem(field, f"host {host} does not resolve")]
    if not addresses:
        return [FieldProblem(field, f"host {host} does not resolve")]
    for address in addresses:
        problem = _address_problem(address, allow_loopback)
        if problem:
            return [FieldProblem(field, f"host {host} resolves to a forbidden address: {problem}")]
    return []


def address_problem(address: str, allow_loopback: bool) -> str | None:
    """Why the service may not connect to this IP address, or None (for checking a resolved one)."""
    return _address_problem(address, allow_loopback)

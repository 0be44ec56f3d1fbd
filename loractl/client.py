"""The HTTP client of the service's REST API: authentication, errors, and JSON in and out.

Two ways to authenticate, chosen by the connection: a bearer token (the local runtime), or
SigV4 with the standard AWS credential chain (service ``execute-api``) for a deployed stack,
whose API Gateway uses IAM authorisation.
"""

from __future__ import annotations

import json
import re
from collections.abc import Generator
from typing import Any

import httpx

from loractl.config import Connection

USER_AGENT = "loractl/0.1"
TIMEOUT = httpx.Timeout(60.0, connect=10.0)
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
EXECUTE_API_HOST = re.compile(r"^[a-z0-9]+\.execute-api\.([a-z0-9-]+)\.amazonaws\.com$")


class ApiError(Exception):
    """The API answered with an error body ``{"error": {"code", "message", "details"}}``."""

    def __init__(self, status: int, code: str, message: str, details: list[dict[str, Any]]) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details

    def describe(self) -> str:
        lines = [f"error {self.status} {self.code}: {self.message}"]
        lines += [f"  - {d.get('field', '?')}: {d.get('problem', d)}" for d in self.details]
        return "\n".join(lines)


class ApiConnectionError(Exception):
    """The endpoint could not be reached."""


def _region_of(endpoint_host: str, configured: str | None) -> str:
    if configured:
        return configured
    match = EXECUTE_API_HOST.match(endpoint_host)
    if match:
        return match.group(1)
    raise ApiConnectionError(
        f"cannot tell the AWS region of {endpoint_host}: pass --region or set region in the profile"
    )


class SigV4(httpx.Auth):
    """Signs each request with botocore's SigV4 signer and the standard credential chain."""

    requires_request_body = True

    def __init__(self, region: str | None, aws_profile: str | None) -> None:
        import boto3  # imported lazily: bearer-token use does not need it

        session = boto3.Session(profile_name=aws_profile) if aws_profile else boto3.Session()
        credentials = session.get_credentials()
        if credentials is None:
            raise ApiConnectionError(
                "no AWS credentials found for SigV4 signing (set AWS_PROFILE, run `aws sso login`, "
                "or use --token for the local runtime)"
            )
        self._credentials = credentials.get_frozen_credentials()
        self._region = region

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        region = _region_of(request.url.host, self._region)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("connection", "user-agent")}
        aws_request = AWSRequest(
            method=request.method, url=str(request.url), data=request.content, headers=headers
        )
        SigV4Auth(self._credentials, "execute-api", region).add_auth(aws_request)
        for name, value in aws_request.headers.items():
            request.headers[name] = value
        yield request


class ApiClient:
    """Small wrapper over httpx that turns error bodies into ``ApiError``."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        auth: httpx.Auth | None
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if connection.token:
            headers["Authorization"] = f"Bearer {connection.token}"
            auth = None
        elif httpx.URL(connection.endpoint).host in LOOPBACK_HOSTS:
            raise ApiConnectionError(
                f"{connection.endpoint} is a local address but no token was found for it: pass --token "
                "(printed by `loractl local serve`), set LORACTL_TOKEN, or use --profile local"
            )
        else:
            auth = SigV4(connection.region, connection.aws_profile)
        self._http = httpx.Client(base_url=connection.endpoint, headers=headers, auth=auth, timeout=TIMEOUT)

    def close(self) -> None:
        self._http.close()

    def request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        query = {k: v for k, v in (params or {}).items() if v is not None}
        content = json.dumps(body).encode("utf-8") if body is not None else None
        request_headers = {**(headers or {}), **({"Content-Type": "application/json"} if content else {})}
        try:
            response = self._http.request(
                method, path, params=query, content=content, headers=request_headers
            )
        except httpx.TransportError as error:
            raise ApiConnectionError(f"cannot reach {self.connection.endpoint}: {error}") from error
        if response.status_code >= 400:
            raise self._error(response)
        if response.status_code == 204 or not response.content:
            return {}
        return response.json()

    @staticmethod
    def _error(response: httpx.Response) -> ApiError:
        try:
            payload = response.json()
        except ValueError:
            payload = {}
        error = payload.get("error") if isinstance(payload, dict) else None
        if isinstance(error, dict):
            return ApiError(
                response.status_code,
                str(error.get("code", "ERROR")),
                str(error.get("message", "")),
                list(error.get("details") or []),
            )
        # API Gateway's own errors: {"message": "..."}
        message = payload.get("message") if isinstance(payload, dict) else None
        return ApiError(response.status_code, "HTTP_ERROR", str(message or response.text[:500]), [])

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params)

    def post(
        self, path: str, body: dict[str, Any] | None = None, headers: dict[str, str] | None = None
    ) -> Any:
        return self.request("POST", path, body=body if body is not None else {}, headers=headers)

    def delete(self, path: str, **params: Any) -> Any:
        return self.request("DELETE", path, params=params)

    def list_all(self, path: str, limit: int | None = None, **params: Any) -> list[dict[str, Any]]:
        """Follow ``next_token`` until the end (or ``limit`` items)."""
        items: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            page = self.get(path, next_token=token, **params)
            items.extend(page_items(page))
            token = page.get("next_token") if isinstance(page, dict) else None
            if not token or (limit is not None and len(items) >= limit):
                return items[:limit] if limit is not None else items


def page_items(page: Any) -> list[dict[str, Any]]:
    """The records of a list response (``{"items": [...], "next_token": ...}``)."""
    if isinstance(page, list):
        return page
    if isinstance(page, dict):
        for key in ("items", "models", "datasets", "trainings"):
            if isinstance(page.get(key), list):
                return list(page[key])
    return []

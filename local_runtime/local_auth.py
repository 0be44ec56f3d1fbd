"""Local authentication: bearer tokens standing in for IAM identities.

In AWS, API Gateway's IAM authoriser puts the caller's ARN in
``requestContext.identity.userArn``. Locally, ``Authorization: Bearer <token>`` names the
caller: each token maps to an owner ``arn:aws:iam::000000000000:user/<name>``. Several users
can exist, so the API's ownership rules are exercised locally too. Tokens live in
``<data-dir>/tokens.json`` (mode 0600) and survive restarts.
"""

from __future__ import annotations

import hmac
import json
import re
import secrets
from pathlib import Path

from local_runtime.defaults import DEFAULT_USER
from local_runtime.sagemaker_jobs import ACCOUNT_ID

__all__ = ["DEFAULT_USER", "LocalTokens", "owner_arn"]

USER_NAME_PATTERN = re.compile(r"^[A-Za-z0-9+=,.@_-]{1,64}$")  # IAM user-name characters
TOKEN_BYTES = 24


def owner_arn(user: str) -> str:
    return f"arn:aws:iam::{ACCOUNT_ID}:user/{user}"


class LocalTokens:
    """The token -> user table of one data directory."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._users: dict[str, str] = {}  # user -> token
        if path.is_file():
            self._users = dict(json.loads(path.read_text(encoding="utf-8"))["users"])

    def ensure_user(self, user: str) -> str:
        """The user's token, created (and saved) on first use."""
        if not USER_NAME_PATTERN.match(user):
            raise ValueError(f"user name {user!r} must match {USER_NAME_PATTERN.pattern}")
        if user not in self._users:
            # hex, with a prefix: a URL-safe token may start with "-", which command lines
            # (loractl --token -abc) would read as an option.
            self._users[user] = "lt_" + secrets.token_hex(TOKEN_BYTES)
            self._save()
        return self._users[user]

    @property
    def users(self) -> dict[str, str]:
        return dict(self._users)

    def owner_for(self, authorization: str | None) -> str | None:
        """The owner ARN for an ``Authorization`` header value, or None when it names no user."""
        if not authorization or not authorization.lower().startswith("bearer "):
            return None
        presented = authorization[len("bearer ") :].strip()
        for user, token in self._users.items():
            if hmac.compare_digest(presented.encode(), token.encode()):
                return owner_arn(user)
        return None

    def _save(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self._path.with_name(self._path.name + ".tmp")
        temporary.write_text(json.dumps({"users": self._users}, indent=1), encoding="utf-8")
        temporary.chmod(0o600)
        temporary.replace(self._path)

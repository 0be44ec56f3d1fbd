"""loractl's configuration file: named profiles of endpoint + credentials.

Location: ``$LORACTL_CONFIG`` or ``~/.config/loractl/config.toml``::

    default_profile = "local"

    [profiles.local]                 # written by `loractl local serve`
    endpoint = "http://127.0.0.1:8787"
    token = "..."                    # bearer token: the local runtime

    [profiles.prod]                  # a deployed stack: SigV4 with the AWS credential chain
    endpoint = "https://abc123.execute-api.eu-west-1.amazonaws.com/prod"
    region = "eu-west-1"
    aws_profile = "training"         # optional; otherwise AWS_PROFILE / the default chain

Flags beat environment variables (``LORACTL_ENDPOINT``, ``LORACTL_TOKEN``, ``LORACTL_PROFILE``),
which beat the file.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w

CONFIG_ENV = "LORACTL_CONFIG"
ENDPOINT_ENV = "LORACTL_ENDPOINT"
TOKEN_ENV = "LORACTL_TOKEN"
PROFILE_ENV = "LORACTL_PROFILE"
DEFAULT_PROFILE = "local"


class ConfigError(Exception):
    """The endpoint or credentials cannot be determined (a usage error)."""


def config_path() -> Path:
    override = os.environ.get(CONFIG_ENV)
    if override:
        return Path(override).expanduser()
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "loractl" / "config.toml"


def load_config(path: Path | None = None) -> dict[str, Any]:
    target = path or config_path()
    if not target.is_file():
        return {}
    try:
        return tomllib.loads(target.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{target}: not valid TOML: {error}") from error


def save_profile(
    name: str, values: dict[str, str], make_default: bool = False, path: Path | None = None
) -> Path:
    """Create or replace one profile, keeping the rest of the file (written with mode 0600)."""
    target = path or config_path()
    data = load_config(target)
    data.setdefault("profiles", {})[name] = values
    if make_default or "default_profile" not in data:
        data["default_profile"] = name
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(target.name + ".tmp")
    temporary.write_text(tomli_w.dumps(data), encoding="utf-8")
    temporary.chmod(0o600)
    temporary.replace(target)
    return target


@dataclass(frozen=True)
class Connection:
    """Where to send requests and how to authenticate them."""

    endpoint: str
    token: str | None = None  # bearer (local runtime); None means SigV4
    region: str | None = None
    aws_profile: str | None = None

    @property
    def uses_sigv4(self) -> bool:
        return self.token is None


def resolve_connection(
    endpoint: str | None = None,
    token: str | None = None,
    profile: str | None = None,
    region: str | None = None,
    aws_profile: str | None = None,
) -> Connection:
    """Flags, then environment, then the config file's profile."""
    data = load_config()
    profile_name = profile or os.environ.get(PROFILE_ENV) or data.get("default_profile") or DEFAULT_PROFILE
    profiles = data.get("profiles", {})
    stored: dict[str, Any] = profiles.get(profile_name, {})
    if (profile or os.environ.get(PROFILE_ENV)) and not stored:
        known = ", ".join(sorted(profiles)) or "none"
        raise ConfigError(f"profile {profile_name!r} is not in {config_path()} (profiles: {known})")
    chosen_endpoint = endpoint or os.environ.get(ENDPOINT_ENV) or stored.get("endpoint")
    if not chosen_endpoint:
        raise ConfigError(
            "no endpoint: pass --endpoint, set LORACTL_ENDPOINT, or run `loractl local serve` "
            f"(which writes the 'local' profile to {config_path()})"
        )
    chosen_token = token or os.environ.get(TOKEN_ENV) or _stored_token(chosen_endpoint, stored, profiles)
    return Connection(
        endpoint=chosen_endpoint.rstrip("/"),
        token=chosen_token or None,
        region=region or stored.get("region"),
        aws_profile=aws_profile or stored.get("aws_profile"),
    )


def _same_endpoint(a: str, b: str) -> bool:
    return a.rstrip("/").lower() == b.rstrip("/").lower()


def _stored_token(endpoint: str, chosen: dict[str, Any], profiles: dict[str, Any]) -> str | None:
    """The token stored for ``endpoint``: the chosen profile's when it names that endpoint, else
    that of the one profile that does (``--endpoint`` with the local runtime's own URL keeps its
    token). An endpoint no profile names gets none: a deployed stack is SigV4-signed."""
    if chosen.get("token") and _same_endpoint(str(chosen.get("endpoint", "")), endpoint):
        return str(chosen["token"])
    tokens = {
        str(p["token"])
        for p in profiles.values()
        if isinstance(p, dict) and p.get("token") and _same_endpoint(str(p.get("endpoint", "")), endpoint)
    }
    return tokens.pop() if len(tokens) == 1 else None

"""``configs defaults`` as a TOML file to edit: every settable key with its help and range.

Keys with a default are written as ``key = value``; optional keys without one are written
commented out (``# key = ``) so they can be switched on by removing the ``#``. Each key is
preceded by its help, type and range from ``GET /configs/defaults``'s ``parameters``.
"""

from __future__ import annotations

from typing import Any

import tomli_w


def _range(info: dict[str, Any]) -> str:
    parts = [str(info.get("type") or "")]
    low, high = info.get("minimum"), info.get("maximum")
    if low is not None or high is not None:
        parts.append(
            f"range {_plain(low) if low is not None else '…'} to {_plain(high) if high is not None else '…'}"
        )
    if info.get("choices"):
        parts.append("one of " + ", ".join(str(c) for c in info["choices"]))
    return "; ".join(p for p in parts if p)


def _plain(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _assignment(key: str, value: Any) -> str:
    return tomli_w.dumps({key: value}).strip()


def defaults_as_toml(response: dict[str, Any]) -> str:
    """The defaults response as a commented TOML parameter file (loads back to the defaults)."""
    defaults: dict[str, Any] = dict(response.get("defaults") or {})
    parameters = [p for p in response.get("parameters") or [] if isinstance(p, dict) and p.get("name")]
    described = {str(p["name"]) for p in parameters}
    lines = [
        f"# Kohya train_network parameters for {response.get('fm_type', '?')}: the service's defaults.",
        "# Edit values, or remove a leading '#' to set an optional key; then",
        "#   loractl configs validate THIS_FILE --fm-type FAMILY [--dataset DATASET_ID]",
        "",
    ]
    for info in sorted(parameters, key=lambda p: (defaults.get(p["name"]) is None, str(p["name"]))):
        key = str(info["name"])
        lines.append(f"# {info.get('help') or key} ({_range(info)})")
        value = defaults.get(key)
        lines.append(_assignment(key, value) if value is not None else f"# {key} = ")
        lines.append("")
    for key in sorted(set(defaults) - described):
        if defaults[key] is not None:
            lines.append(_assignment(key, defaults[key]))
    reserved = response.get("reserved") or {}
    if reserved:
        lines.append("# Set by the service (refused here): " + ", ".join(sorted(reserved)))
    return "\n".join(lines).rstrip() + "\n"

"""Defaults of the local runtime that the CLI needs without importing the runtime itself."""

from __future__ import annotations

from pathlib import Path

DEFAULT_API_PORT = 8787
DEFAULT_DATA_DIR = Path(".local-data")
RUNTIME_INFO_FILE = "runtime.json"
DEFAULT_USER = "local"

"""What loractl prints: rich tables for people, JSON for scripts (``--json``)."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

console = Console()
errors = Console(stderr=True)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict | list):
        return json.dumps(value, default=str)
    return str(value)


def print_table(rows: Sequence[dict[str, Any]], columns: Sequence[str], title: str | None = None) -> None:
    table = Table(title=title, show_lines=False)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(_cell(row.get(column)) for column in columns))
    console.print(table)


def print_record(record: dict[str, Any], title: str | None = None) -> None:
    """One record as a two-column table, nested objects flattened one level (``progress.step``)."""
    table = Table(title=title, show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    for key, value in record.items():
        if isinstance(value, dict) and value and all(not isinstance(v, dict | list) for v in value.values()):
            for sub_key, sub_value in value.items():
                table.add_row(f"{key}.{sub_key}", _cell(sub_value))
        else:
            table.add_row(key, _cell(value))
    console.print(table)


def emit(data: Any, as_json: bool, columns: Sequence[str] | None = None, title: str | None = None) -> None:
    """Print a record or a list of records in the chosen format."""
    if as_json:
        print_json(data)
    elif isinstance(data, list):
        print_table(data, columns or (list(data[0]) if data else ["id"]), title)
    elif isinstance(data, dict):
        print_record(data, title)
    else:
        console.print(data)

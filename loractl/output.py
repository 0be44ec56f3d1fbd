"""What loractl prints: tables and sectioned detail views for people, JSON or bare ids for scripts.

``-o table`` (default) prints list tables whose id column is never cut (every next command
needs an id) and detail views in a few short sections instead of raw JSON; ``-o json`` prints
the API's records unchanged; ``-o id`` prints only ids, one per line, for ``$(...)``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from functions.domain.ids import ID_LENGTH

console = Console()
errors = Console(stderr=True, soft_wrap=True)  # messages are never re-wrapped mid-path
Section = tuple[str, list[tuple[str, Any]]]


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def number(value: float) -> str:
    """A float for people: 4 significant digits (0.8058637380599976 -> 0.8059)."""
    return f"{value:.4g}"


def cell(value: Any) -> str:
    if value is None or value == "" or value == []:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return number(value)
    if isinstance(value, dict):
        return ", ".join(f"{k} {cell(v)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(cell(v) for v in value)
    return str(value)


def print_table(rows: Sequence[dict[str, Any]], columns: Sequence[str], title: str | None = None) -> None:
    """Rows as a table; the id column keeps its full width however narrow the terminal."""
    table = Table(title=title, show_lines=False)
    for column in columns:
        if column.endswith("id"):
            table.add_column(column, no_wrap=True, min_width=ID_LENGTH, overflow="fold")
        else:
            table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(cell(row.get(column)) for column in columns))
    console.print(table)


def print_sections(sections: Sequence[Section]) -> None:
    """A detail view: a heading per section and ``label  value`` lines, empty sections left out."""
    for title, lines in sections:
        shown = [(label, value) for label, value in lines if value not in (None, "", [])]
        if not shown:
            continue
        console.print(f"[bold]{title}[/bold]", highlight=False)
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="dim", no_wrap=True)
        grid.add_column(overflow="fold")
        for label, value in shown:
            grid.add_row(f"  {label}", cell(value))
        console.print(grid, highlight=False)


def print_record(record: dict[str, Any], title: str | None = None) -> None:
    """A record without a dedicated view: one section of its scalar fields."""
    print_sections([(title or "result", list(record.items()))])


def print_ids(data: Any) -> None:
    """The id of each record (or its ``path``, for downloads), one per line."""
    records = data if isinstance(data, list) else [data]
    for record in records:
        if isinstance(record, dict):
            value = record.get("id") or record.get("path") or record.get("output")
            if value:
                sys.stdout.write(f"{value}\n")


def emit(
    data: Any,
    output: str,
    columns: Sequence[str] | None = None,
    title: str | None = None,
    sections: Sequence[Section] | None = None,
) -> None:
    """Print a record or a list of records in the chosen format (``table``, ``json`` or ``id``)."""
    if output == "json":
        print_json(data)
    elif output == "id":
        print_ids(data)
    elif isinstance(data, list):
        print_table(data, columns or (list(data[0]) if data else ["id"]), title)
    elif sections is not None:
        print_sections(sections)
    elif isinstance(data, dict):
        print_record(data, title)
    else:
        console.print(data)

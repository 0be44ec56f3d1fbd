"""The layers import one way (docs/ARCHITECTURE.md), read from the source with ``ast``.

Imports inside functions count too: a hidden import is still a dependency (``loractl --help``
used to import the whole local server that way).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OURS = ("functions", "training_container", "local_runtime", "loractl", "infrastructure", "app")

# package -> the packages of ours (besides itself) it may import
ALLOWED: dict[str, tuple[str, ...]] = {
    "functions.domain": (),
    "functions.adapters": ("functions.domain",),
    # the API's request/view shapes: the wire contract, built on the domain only
    "functions.api.schemas": ("functions.domain",),
    # use cases take the validated request and return the view (functions/api/schemas/__init__.py),
    # but never reach into the HTTP layer's routing, errors or handler
    "functions.services": (
        "functions.domain",
        "functions.adapters",
        "functions.api.schemas",
        "functions.settings",
        "functions.observability",
    ),
    "training_container": ("functions.domain",),
    "loractl": ("functions.domain",),
}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return {name for name in names if name.split(".")[0] in OURS}


def _violations(package: str, allowed: tuple[str, ...]) -> list[str]:
    folder = ROOT / package.replace(".", "/")
    found = []
    for path in sorted(folder.rglob("*.py")):
        for name in sorted(_imports(path)):
            if not any(name == p or name.startswith(p + ".") for p in (package, *allowed)):
                found.append(f"{path.relative_to(ROOT)} imports {name}")
    return found


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_each_layer_imports_only_what_it_may(package: str) -> None:
    assert _violations(package, ALLOWED[package]) == []


def test_the_checker_sees_imports_hidden_inside_functions(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from local_runtime.serve import main\n    import functions.api.app\n")
    assert _imports(module) == {"local_runtime.serve", "functions.api.app"}

"""Single functions of the pinned sd-scripts checkout (``.sd-scripts``, sd-scripts v0.10.1),
compiled from its source at test time, to run its own checks on the files tests write.

sd-scripts' modules cannot be imported into the service's environment (library/utils.py needs
torchvision and OpenCV), but its file analysers are plain functions of their arguments: taking one
``def`` out of the module and running it with the names it uses tests our files against
sd-scripts' code itself, not a copy of it.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

SD_SCRIPTS_CHECKOUT = Path(__file__).parents[2] / ".sd-scripts"

needs_sd_scripts = pytest.mark.skipif(
    not (SD_SCRIPTS_CHECKOUT / "library" / "sd3_utils.py").is_file(),
    reason="no sd-scripts checkout at .sd-scripts",
)


def sd_scripts_function(relative_path: str, name: str, **names: Any) -> Callable[..., Any]:
    """The top-level function ``name`` of ``<checkout>/<relative_path>``, its globals ``names``."""
    path = SD_SCRIPTS_CHECKOUT / relative_path
    tree = ast.parse(path.read_text(encoding="utf-8"))
    (node,) = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name]
    namespace: dict[str, Any] = dict(names)
    exec(compile(ast.Module(body=[node], type_ignores=[]), str(path), "exec"), namespace)
    function: Callable[..., Any] = namespace[name]
    return function


def sd_scripts_string_literals(relative_path: str, contains: str) -> set[str]:
    """Every string constant of a sd-scripts source file that contains ``contains``."""
    tree = ast.parse((SD_SCRIPTS_CHECKOUT / relative_path).read_text(encoding="utf-8"))
    return {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and contains in node.value
    }

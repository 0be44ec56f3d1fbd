"""Regenerate the committed list of options that a pinned sd-scripts checkout accepts.

sd-scripts silently ignores unknown TOML keys, so the tests check every key the service emits
against this list. It is extracted statically (sd-scripts' dependencies are not installed
here): starting from ``setup_parser`` of each family's script (``SCRIPTS``: ``train_network.py``,
``sdxl_train_network.py``, ``flux_train_network.py``, ``sd3_train_network.py``), follow the
``setup_parser`` and ``add_*_arguments`` calls and collect every ``add_argument("--name")``; the
dataset TOML keys come from ``library/config_util.py``'s schema dictionaries.

Usage::

    python -m training_container.tools.extract_sd_scripts_options CHECKOUT TAG OUT.json [COMMIT]
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import warnings
from pathlib import Path

# The family scripts (functions.domain.families FamilySpec.kohya_script), by module name.
SCRIPTS = ("train_network", "sdxl_train_network", "flux_train_network", "sd3_train_network")
SOURCE_FILES = (
    "train_network.py",
    "sdxl_train_network.py",
    # Their setup_parser adds train_util.add_dit_training_arguments and, respectively,
    # flux_train_utils.add_flux_train_arguments / sd3_train_utils.add_sd3_training_arguments.
    "flux_train_network.py",
    "sd3_train_network.py",
    "library/flux_train_utils.py",
    "library/sd3_train_utils.py",
    "library/train_util.py",
    "library/sdxl_train_util.py",
    "library/config_util.py",
    "library/custom_train_functions.py",
    "library/deepspeed_utils.py",
    "library/sai_model_spec.py",
    "library/utils.py",
)
SUBSET_SCHEMAS = (
    "SUBSET_ASCENDABLE_SCHEMA",
    "DB_SUBSET_DISTINCT_SCHEMA",
    "DB_SUBSET_ASCENDABLE_SCHEMA",
    "DO_SUBSET_ASCENDABLE_SCHEMA",
)
DATASET_SCHEMAS = (
    "DATASET_ASCENDABLE_SCHEMA",
    "SUBSET_ASCENDABLE_SCHEMA",
    "DB_SUBSET_ASCENDABLE_SCHEMA",
    "DO_SUBSET_ASCENDABLE_SCHEMA",
)


def _called_name(node: ast.Call) -> str | None:
    """``module.function`` for ``train_util.add_x(...)``, the bare name for ``add_x(...)``."""
    if isinstance(node.func, ast.Attribute):
        owner = node.func.value
        return f"{owner.id}.{node.func.attr}" if isinstance(owner, ast.Name) else node.func.attr
    return node.func.id if isinstance(node.func, ast.Name) else None


def _functions(tree: ast.Module, module: str) -> dict[str, tuple[set[str], set[str]]]:
    """``qualified name -> (options it adds, names it calls)`` for each function in a module."""
    found: dict[str, tuple[set[str], set[str]]] = {}
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef):
            continue
        options: set[str] = set()
        calls: set[str] = set()
        for call in (n for n in ast.walk(node) if isinstance(n, ast.Call)):
            name = _called_name(call)
            if name and name.rpartition(".")[2] == "add_argument":
                options.update(
                    a.value[2:]
                    for a in call.args
                    if isinstance(a, ast.Constant) and isinstance(a.value, str) and a.value.startswith("--")
                )
            elif name:
                calls.add(name)
        found[f"{module}:{node.name}"] = (options, calls)
    return found


def _callees(call: str, caller_module: str, functions: dict[str, tuple[set[str], set[str]]]) -> list[str]:
    """The functions a parser-building call may reach.

    ``train_network.setup_parser()`` (flux_train_network.py, sd3_train_network.py) names its module:
    only that module's function is followed, so one script never collects another's options. A
    bare ``add_x(parser)`` is the caller module's own, else any module's of that name; a call on a
    local object (``parser.add_argument_group``) is followed by its bare name as before.
    """
    owner, _, bare = call.rpartition(".")
    if not (bare == "setup_parser" or bare.startswith("add_")):
        return []
    if owner:
        qualified = [
            q for q in functions if q.split(":")[0].rpartition(".")[2] == owner and q.endswith(f":{bare}")
        ]
        if qualified:
            return qualified
    own = f"{caller_module}:{bare}"
    if not owner and own in functions:
        return [own]
    return [q for q in functions if q.endswith(f":{bare}")]


def parser_options(checkout: Path, entry_module: str) -> list[str]:
    functions: dict[str, tuple[set[str], set[str]]] = {}
    for relative in SOURCE_FILES:
        module = relative.removesuffix(".py").replace("/", ".")
        with warnings.catch_warnings():  # sd-scripts' docstrings hold escapes Python warns about
            warnings.simplefilter("ignore", SyntaxWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            tree = ast.parse((checkout / relative).read_text(encoding="utf-8"))
        functions.update(_functions(tree, module))
    pending, seen, options = [f"{entry_module}:setup_parser"], set(), set()
    while pending:
        qualified = pending.pop()
        if qualified in seen:
            continue
        seen.add(qualified)
        added, calls = functions[qualified]
        options |= added
        for call in calls:
            pending.extend(_callees(call, qualified.split(":")[0], functions))
    return sorted(options)


def dataset_schema_keys(checkout: Path) -> dict[str, list[str]]:
    tree = ast.parse((checkout / "library/config_util.py").read_text(encoding="utf-8"))
    schemas: dict[str, set[str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict):
            target = node.targets[0]
            if isinstance(target, ast.Name) and target.id.endswith("_SCHEMA"):
                keys = set()
                for key in node.value.keys:
                    if isinstance(key, ast.Call) and key.args and isinstance(key.args[0], ast.Constant):
                        key = key.args[0]
                    if isinstance(key, ast.Constant) and isinstance(key.value, str):
                        keys.add(key.value)
                schemas[target.id] = keys
    dataset = set().union(*(schemas[name] for name in DATASET_SCHEMAS))
    subset = set().union(*(schemas[name] for name in SUBSET_SCHEMAS))
    return {"general": sorted(dataset), "datasets": sorted(dataset), "subsets": sorted(subset)}


def extract(checkout: Path, tag: str, commit: str | None = None) -> dict[str, object]:
    commit = (
        commit
        or subprocess.run(
            ["git", "-C", str(checkout), "rev-parse", "HEAD"], capture_output=True, text=True, check=False
        ).stdout.strip()
    )
    return {
        "tag": tag,
        "commit": commit or None,
        **{script: parser_options(checkout, script) for script in SCRIPTS},
        "dataset_config": dataset_schema_keys(checkout),
    }


def main(argv: list[str]) -> int:
    if len(argv) not in (3, 4):
        print(__doc__, file=sys.stderr)
        return 2
    checkout, tag, out = Path(argv[0]), argv[1], Path(argv[2])
    commit = argv[3] if len(argv) == 4 else None
    out.write_text(json.dumps(extract(checkout, tag, commit), indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

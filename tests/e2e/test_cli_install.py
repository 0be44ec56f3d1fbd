"""Installing loractl: the package metadata builds without setuptools' deprecation warnings
(they were printed by every `make` that (re)installs the venv) and declares the console script."""

from __future__ import annotations

import tomllib
import warnings

import pytest
from setuptools.config import pyprojecttoml
from setuptools.dist import Distribution

from tests.e2e.conftest import PROJECT_ROOT


def test_pyproject_applies_without_setuptools_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(PROJECT_ROOT)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # SetuptoolsDeprecationWarning (e.g. a TOML-table license) fails
        distribution = pyprojecttoml.apply_configuration(Distribution(), PROJECT_ROOT / "pyproject.toml")
    assert distribution.metadata.license_expression == "Apache-2.0"


def test_the_console_scripts_are_loractl_and_the_local_server() -> None:
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    # lora-local: the local runtime's own entry (loractl runs it as a child, never imports it).
    assert project["scripts"] == {"loractl": "loractl.main:main", "lora-local": "local_runtime.serve:main"}

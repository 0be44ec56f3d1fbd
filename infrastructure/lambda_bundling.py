"""Packages the Lambda code without Docker: the project's ``functions/`` plus pinned wheels.

``pip install --platform manylinux2014_aarch64 --only-binary=:all:`` fetches the arm64 wheels for
the Lambda runtime's Python on any build machine, so ``cdk synth``/``deploy`` need no Docker for
the functions (``PythonFunction`` would). The asset hash covers the code and the pins, so a
change of either redeploys.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import jsii
from aws_cdk import BundlingOptions, DockerImage, ILocalBundling

ROOT = Path(__file__).resolve().parents[1]
FUNCTIONS = ROOT / "functions"
REQUIREMENTS = Path(__file__).resolve().parent / "lambda_requirements.txt"
TASKS_REQUIREMENTS = Path(__file__).resolve().parent / "tasks_requirements.txt"
PYTHON_VERSION = "3.14"
PLATFORM = "manylinux2014_aarch64"


def source_files() -> list[Path]:
    return sorted(p for p in FUNCTIONS.rglob("*.py") if "__pycache__" not in p.parts)


def asset_hash(extra_requirements: Path | None = None) -> str:
    digest = hashlib.sha256(REQUIREMENTS.read_bytes())
    if extra_requirements is not None:
        digest.update(extra_requirements.read_bytes())
    for path in source_files():
        digest.update(path.relative_to(ROOT).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def install_command(target: Path, extra_requirements: Path | None = None) -> list[str]:
    extra = ["-r", str(extra_requirements)] if extra_requirements is not None else []
    return [
        sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--only-binary=:all:",
        "--platform", PLATFORM, "--implementation", "cp", "--python-version", PYTHON_VERSION,
        "--target", str(target), "-r", str(REQUIREMENTS), *extra,
    ]  # fmt: skip


def bundle_into(output_dir: Path, extra_requirements: Path | None = None) -> None:
    subprocess.run(install_command(output_dir, extra_requirements), check=True)
    shutil.copytree(
        FUNCTIONS, output_dir / "functions", ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
    )


@jsii.implements(ILocalBundling)
class LocalPipBundler:
    """CDK's local-bundling hook: always succeeds locally, so Docker is never tried."""

    def __init__(self, extra_requirements: Path | None = None) -> None:
        self._extra_requirements = extra_requirements

    def try_bundle(self, output_dir: str, *, image: DockerImage, **_: object) -> bool:
        bundle_into(Path(output_dir), self._extra_requirements)
        return True


def bundling_options(extra_requirements: Path | None = None) -> BundlingOptions:
    # ``image`` is required by the API; with local bundling succeeding it is never pulled.
    return BundlingOptions(
        image=DockerImage.from_registry("public.ecr.aws/sam/build-python3.14"),
        local=LocalPipBundler(extra_requirements),
    )

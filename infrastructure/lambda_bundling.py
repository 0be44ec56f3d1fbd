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
PYTHON_VERSION = "3.14"
PLATFORM = "manylinux2014_aarch64"


def source_files() -> list[Path]:
    return sorted(p for p in FUNCTIONS.rglob("*.py") if "__pycache__" not in p.parts)


def asset_hash() -> str:
    digest = hashlib.sha256(REQUIREMENTS.read_bytes())
    for path in source_files():
        digest.update(path.relative_to(ROOT).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def install_command(target: Path) -> list[str]:
    return [
        sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--only-binary=:all:",
        "--platform", PLATFORM, "--implementation", "cp", "--python-version", PYTHON_VERSION,
        "--target", str(target), "-r", str(REQUIREMENTS),
    ]  # fmt: skip


def bundle_into(output_dir: Path) -> None:
    subprocess.run(install_command(output_dir), check=True)
    shutil.copytree(
        FUNCTIONS, output_dir / "functions", ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
    )


@jsii.implements(ILocalBundling)
class LocalPipBundler:
    """CDK's local-bundling hook: always succeeds locally, so Docker is never tried."""

    def try_bundle(self, output_dir: str, *, image: DockerImage, **_: object) -> bool:
        bundle_into(Path(output_dir))
        return True


def bundling_options() -> BundlingOptions:
    # ``image`` is required by the API; with local bundling succeeding it is never pulled.
    return BundlingOptions(
        image=DockerImage.from_registry("public.ecr.aws/sam/build-python3.14"), local=LocalPipBundler()
    )

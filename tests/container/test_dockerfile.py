"""The image can't be built here; check the Dockerfile's promises that the tests can check."""

from __future__ import annotations

import re
from pathlib import Path

DOCKERFILE = Path(__file__).resolve().parents[2] / "training_container" / "Dockerfile"


def _instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            rows.append((keyword.upper(), rest.strip()))
    return rows


def test_sagemaker_can_start_the_container_with_train() -> None:
    """SageMaker runs `docker run <image> train`: an ENTRYPOINT would get "train" as an argument."""
    rows = _instructions()
    assert not [r for r in rows if r[0] == "ENTRYPOINT"]
    assert any(
        k == "RUN" and "/usr/local/bin/train" in v and "training_container.entrypoint" in v for k, v in rows
    )


def test_base_image_and_sd_scripts_are_pinned() -> None:
    rows = _instructions()
    base = next(v for k, v in rows if k == "FROM")
    assert ":" in base and not base.endswith(":latest")
    args = dict(v.split("=", 1) for k, v in rows if k == "ARG" and "=" in v)
    assert re.fullmatch(r"v\d+\.\d+\.\d+", args["SD_SCRIPTS_TAG"])
    assert re.fullmatch(r"[0-9a-f]{40}", args["SD_SCRIPTS_COMMIT"])


def test_jobs_run_offline() -> None:
    env = " ".join(v for k, v in _instructions() if k == "ENV")
    assert "HF_HUB_OFFLINE=1" in env and "TRANSFORMERS_OFFLINE=1" in env
    assert any(k == "RUN" and "training_container.bake_assets" in v for k, v in _instructions())


def test_the_image_and_the_real_engine_tests_install_the_same_additions() -> None:
    """One list (image-requirements.txt) for the image and for the venv test_real_image_stack.py
    runs the container's code with; the venv's torch is the base image's."""
    requirements = DOCKERFILE.parent / "image-requirements.txt"
    pins = [line for line in requirements.read_text().splitlines() if line and not line.startswith("#")]
    assert pins and all("==" in pin or "<" in pin for pin in pins), pins
    rows = _instructions()
    assert ("COPY", "training_container/image-requirements.txt /tmp/image-requirements.txt") in rows
    assert any(k == "RUN" and "pip install -r /tmp/image-requirements.txt" in v for k, v in rows)
    setup = Path(__file__).parent / "real_engine" / "setup_sd_scripts.sh"
    assert "training_container/image-requirements.txt" in setup.read_text()
    assert "FROM pytorch/pytorch:" in setup.read_text()
    assert next(v for k, v in rows if k == "FROM").startswith("pytorch/pytorch:")

"""A diffusers-engine job laid out like SageMaker's /opt/ml from the files a user uploads: the main
checkpoint in the ``model`` channel and each component in the channel named after its role
(functions.domain.training_contract), with a tiny dataset and job.json."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from functions.domain.families import ComponentRole, FmType
from functions.domain.kohya_params import validate_config
from functions.domain.training_contract import JOB_CHANNEL, JOB_SPEC_FILENAME, TrainingJobSpec
from training_container.testing.tiny_models import make_tiny_dataset

SIDE = 64
# Two steps at 64 px in full precision on the CPU; FLUX.1 / SD 3.5 with the tiny T5's short prompts.
FAST_CONFIG: dict[str, Any] = {
    "resolution": str(SIDE),
    "enable_bucket": False,
    "max_train_steps": 2,
    "network_dim": 4,
    "network_alpha": 2.0,
    "mixed_precision": "no",
}
FAST_FLOW_CONFIG: dict[str, Any] = {**FAST_CONFIG, "t5xxl_max_token_length": 16}


def components_of(files: dict[str, Path]) -> dict[ComponentRole, Path]:
    """The component files of ``save_tiny_model_files``' result, by role."""
    return {ComponentRole(k): v for k, v in files.items() if k != "checkpoint"}


def lay_out_upload_job(
    root: Path,
    fm_type: FmType,
    files: dict[str, Path],
    *,
    base_name: str,
    output_name: str,
    config: dict[str, Any] | None = None,
    sample_prompts: list[dict[str, Any]] | None = None,
) -> Path:
    """``root`` as SageMaker lays out /opt/ml for one job trained from ``files``; returns it."""
    data = root / "input" / "data"
    (data / "model").mkdir(parents=True)
    shutil.copyfile(files["checkpoint"], data / "model" / base_name)
    for role, path in components_of(files).items():
        (data / role.value).mkdir()
        shutil.copyfile(path, data / role.value / path.name)
    make_tiny_dataset(data / "dataset", concept="demo", repeats=1, n_images=2, size=(SIDE, SIDE))
    fast = FAST_FLOW_CONFIG if fm_type in (FmType.FLUX1, FmType.SD35) else FAST_CONFIG
    normalised, problems = validate_config({**fast, **(config or {})}, fm_type)
    assert not problems, problems
    spec = TrainingJobSpec(
        job_id=f"job-{fm_type.value}",
        fm_type=fm_type,
        engine="diffusers",
        output_name=output_name,
        base_model_filename=base_name,
        component_filenames={role: path.name for role, path in components_of(files).items()},
        config=normalised,
        sample_prompts=sample_prompts or [],
    )
    (data / JOB_CHANNEL).mkdir()
    (data / JOB_CHANNEL / JOB_SPEC_FILENAME).write_text(spec.to_json())
    return root

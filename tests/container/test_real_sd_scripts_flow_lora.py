"""The FLUX.1 / SD 3.5 files users upload, and the LoRAs the diffusers engine trains from them,
against the real sd-scripts' own code (not the stand-in, not a copy of its rules).

For each family, the tiny checkpoint goes into sd-scripts' own model class
(``real_engine/flow_lora_keys.py``: ``flux_models.Flux`` as ``flux_utils.load_flow_model`` builds
it; ``sd3_utils.load_mmdit`` as ``sd3_train_network.py`` calls it), which must find every tensor
it expects and nothing else. sd-scripts' own ``networks/lora_flux.py`` / ``lora_sd3.py`` then make
the LoRA for that model, and the LoRA the diffusers engine wrote from the same files must hold
exactly its keys, shapes and alphas. So the portable engine's LoRA is one sd-scripts would have
written, and which ComfyUI and sd-scripts load by these names.

Skipped unless ``SD_SCRIPTS_DIR`` and ``SD_SCRIPTS_PYTHON`` are set; see docs/real-engine-tests.md.
About 40 s for both families on 2 CPU cores.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from safetensors.torch import load_file

from functions.domain.families import FmType
from tests.container.real_engine.harness import (
    SKIP_REASON,
    SdScriptsSetup,
    sd_scripts_python,
    sd_scripts_setup,
)
from tests.container.upload_jobs import FAST_FLOW_CONFIG, lay_out_upload_job
from training_container.entrypoint import run_job
from training_container.testing.tiny_flow_models import save_tiny_model_files

SCRIPT = Path(__file__).parent / "real_engine" / "flow_lora_keys.py"
SETUP = sd_scripts_setup()
pytestmark = pytest.mark.skipif(SETUP is None, reason=SKIP_REASON)
BASE_NAMES = {FmType.FLUX1: "flux1-dev.safetensors", FmType.SD35: "sd3.5_medium.safetensors"}


def sd_scripts_lora(setup: SdScriptsSetup, family: FmType, checkpoint: Path) -> dict[str, Any]:
    """What flow_lora_keys.py prints, run with sd-scripts' interpreter from its checkout."""
    printed = sd_scripts_python(
        setup,
        str(SCRIPT),
        family.value,
        str(checkpoint),
        str(FAST_FLOW_CONFIG["network_dim"]),
        str(FAST_FLOW_CONFIG["network_alpha"]),
        timeout=600,
    )
    result: dict[str, Any] = json.loads(printed.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize("family", [FmType.FLUX1, FmType.SD35])
def test_the_engine_writes_the_lora_sd_scripts_makes_for_one_file(family: FmType, tmp_path: Path) -> None:
    assert SETUP is not None
    files = save_tiny_model_files(family, tmp_path / "files")
    root = lay_out_upload_job(
        tmp_path / "opt_ml", family, files, base_name=BASE_NAMES[family], output_name="lora"
    )
    assert run_job(root) == 0, (root / "output" / "failure").read_text()
    ours = load_file(str(root / "model" / "lora.safetensors"))

    theirs = sd_scripts_lora(SETUP, family, files["checkpoint"])

    assert theirs["load"] == {"missing": [], "unexpected": []}, "sd-scripts' model does not match the file"
    assert theirs["lora"], "sd-scripts made no LoRA modules"
    assert sorted(ours) == sorted(theirs["lora"])
    assert {key: list(tensor.shape) for key, tensor in ours.items()} == theirs["lora"]
    assert {key: float(ours[key]) for key in theirs["alphas"]} == theirs["alphas"]

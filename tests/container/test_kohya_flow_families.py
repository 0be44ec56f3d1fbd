"""The kohya engine for FLUX.1 and SD 3.5: argv, TOML, component files and refusals.

The engine runs the sd-scripts stand-in (tests/container/fake_sd_scripts) under the family's script
name; the stand-in fails on any TOML key the pinned script's parser lacks (the options fixture),
so these runs also check the emitted options against flux_train_network.py / sd3_train_network.py.
The model and component files are placeholders: the stand-in never reads weights.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import toml
from safetensors import safe_open

from functions.domain.catalog import FmType
from functions.domain.epoch_outputs import SamplePrompt
from functions.domain.families import FAMILIES, ComponentRole
from functions.domain.kohya_params import validate_config
from functions.domain.training_contract import JOB_CHANNEL, JOB_SPEC_FILENAME, TrainingJobSpec
from training_container.engines.base import EngineRequest
from training_container.engines.kohya_engine import LAUNCHER_ENV, run_kohya_engine
from training_container.entrypoint import read_job_inputs, stage_dataset
from training_container.errors import JobFailure
from training_container.kohya_config import build_kohya_configs
from training_container.progress import ProgressReporter
from training_container.testing.tiny_models import make_tiny_dataset

FAKE_SD_SCRIPTS = Path(__file__).parent / "fake_sd_scripts"
FLUX_FILES = {
    ComponentRole.AE: "ae.safetensors",
    ComponentRole.CLIP_L: "clip_l.safetensors",
    ComponentRole.T5XXL: "t5xxl_fp16.safetensors",
}
# Small enough for the stand-in; valid for the service's checks (bucket sides multiples of 32).
FAST = {"resolution": 256, "min_bucket_reso": 256, "max_bucket_reso": 512, "max_train_epochs": 2}


def lay_out_job(
    root: Path,
    fm_type: FmType,
    components: dict[ComponentRole, str],
    *,
    config: dict[str, Any] | None = None,
    instance_type: str | None = None,
    write_components: bool = True,
    raw_config: dict[str, Any] | None = None,
) -> Path:
    """``root`` laid out like SageMaker's /opt/ml for one job, with a channel per component."""
    data = root / "input" / "data"
    (data / "model").mkdir(parents=True)
    (data / "model" / "base.safetensors").write_bytes(b"placeholder")
    for role, filename in components.items():
        if write_components:
            (data / role.value).mkdir(parents=True, exist_ok=True)
            (data / role.value / filename).write_bytes(b"placeholder")
    make_tiny_dataset(data / "dataset", concept="demo", repeats=1, n_images=2, size=(256, 256))
    normalised, problems = validate_config({**FAST, **(config or {})}, fm_type, instance_type=instance_type)
    assert not problems, problems
    spec = TrainingJobSpec(
        job_id="job-1",
        fm_type=fm_type,
        engine="kohya",
        output_name="my-lora",
        base_model_filename="base.safetensors",
        component_filenames=components,
        config=raw_config if raw_config is not None else normalised,
        sample_prompts=[SamplePrompt(prompt="a demo photo", seed=1, width=256, height=256)],
        trigger_word="ohwx",
    )
    (data / JOB_CHANNEL).mkdir(parents=True)
    (data / JOB_CHANNEL / JOB_SPEC_FILENAME).write_text(spec.to_json())
    return root


@pytest.fixture
def fake_launcher(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(LAUNCHER_ENV, json.dumps([sys.executable]))


def run_engine(root: Path) -> tuple[Path, dict[str, Any]]:
    """read_job_inputs -> stage -> run_kohya_engine; returns the LoRA and the training TOML."""
    inputs = read_job_inputs(root)
    work = root / "work"
    request = EngineRequest(
        fm_type=inputs.spec.fm_type,
        config=inputs.config,
        model_path=inputs.model_path,
        dataset=stage_dataset(inputs, work),
        work_dir=work,
        output_dir=root / "checkpoints" / "kohya",
        output_name=inputs.spec.output_name,
        checkpoints_dir=root / "checkpoints",
        progress=ProgressReporter(root / "checkpoints"),
        sample_prompts=inputs.spec.sample_prompts,
        trigger_word=inputs.spec.trigger_word,
        component_paths=inputs.component_paths,
    )
    result = run_kohya_engine(request, FAKE_SD_SCRIPTS)
    assert result.lora_path is not None and result.steps == 4
    return result.lora_path, toml.load(work / "kohya" / "training_config.toml")


def lora_keys(path: Path) -> tuple[list[str], dict[str, str]]:
    with safe_open(str(path), framework="pt") as handle:
        return sorted(handle.keys()), handle.metadata() or {}


@pytest.mark.usefixtures("fake_launcher")
def test_flux_runs_flux_train_network_with_its_components(tmp_path: Path) -> None:
    root = lay_out_job(tmp_path / "opt_ml", FmType.FLUX1, FLUX_FILES, instance_type="ml.g4dn.xlarge")

    lora, training = run_engine(root)

    data = root / "input" / "data"
    assert {role: training[role] for role in ("ae", "clip_l", "t5xxl")} == {
        "ae": str(data / "ae" / "ae.safetensors"),
        "clip_l": str(data / "clip_l" / "clip_l.safetensors"),
        "t5xxl": str(data / "t5xxl" / "t5xxl_fp16.safetensors"),
    }
    assert "clip_g" not in training
    assert training["pretrained_model_name_or_path"] == str(data / "model" / "base.safetensors")
    assert training["network_module"] == "networks.lora_flux"
    # sai_model_spec.add_model_spec_arguments, in every script's parser (the stand-in checks it).
    assert training["metadata_trigger_phrase"] == "ohwx"
    # The guide's recommendation, fp8 base, and the swap the 16 GB GPU needs (docs line 287-289).
    assert (training["timestep_sampling"], training["discrete_flow_shift"]) == ("shift", 3.1582)
    assert (training["model_prediction_type"], training["guidance_scale"]) == ("raw", 1.0)
    assert training["fp8_base"] is True and training["blocks_to_swap"] == 16
    assert training["cache_text_encoder_outputs"] is True and training["network_train_unet_only"] is True
    prompts = Path(training["sample_prompts"]).read_text(encoding="utf-8")
    assert prompts == "a demo photo --w 256 --h 256 --d 1 --s 20 --g 3.5\n"
    keys, metadata = lora_keys(lora)
    assert "lora_unet_double_blocks_0_img_attn_qkv.lora_down.weight" in keys
    assert "lora_unet_single_blocks_0_linear1.lora_up.weight" in keys
    assert all(key.startswith("lora_unet_") for key in keys)
    assert metadata["ss_network_module"] == "networks.lora_flux"
    assert list((root / "checkpoints" / "kohya" / "sample").glob("my-lora_e000002_00_*_1.png"))


@pytest.mark.usefixtures("fake_launcher")
def test_sd35_passes_only_the_components_it_was_given(tmp_path: Path) -> None:
    components = {ComponentRole.T5XXL: "t5xxl_fp8_e4m3fn.safetensors"}
    config = {"network_train_unet_only": False}  # CLIP-L/CLIP-G LoRA on top of cached outputs
    root = lay_out_job(
        tmp_path / "opt_ml", FmType.SD35, components, config=config, instance_type="ml.g5.xlarge"
    )

    lora, training = run_engine(root)

    assert training["t5xxl"] == str(root / "input" / "data" / "t5xxl" / "t5xxl_fp8_e4m3fn.safetensors")
    assert not {"clip_l", "clip_g", "ae"} & set(training)  # read from the checkpoint
    assert training["network_module"] == "networks.lora_sd3"
    assert training["blocks_to_swap"] == 22 and training["cache_text_encoder_outputs"] is True
    assert (training["weighting_scheme"], training["training_shift"]) == ("uniform", 1.0)
    assert (
        "--l 7 " not in Path(training["sample_prompts"]).read_text()
        and "--g" not in training["sample_prompts"]
    )
    keys, metadata = lora_keys(lora)
    assert "lora_unet_joint_blocks_0_x_block_attn_qkv.alpha" in keys
    assert "lora_unet_joint_blocks_0_context_block_attn_qkv.lora_down.weight" in keys
    assert "lora_te1_text_model_encoder_layers_0_self_attn_q_proj.lora_up.weight" in keys
    assert metadata["ss_network_module"] == "networks.lora_sd3"


@pytest.mark.usefixtures("fake_launcher")
def test_sd35_with_every_text_encoder_in_the_checkpoint_needs_no_component(tmp_path: Path) -> None:
    root = lay_out_job(tmp_path / "opt_ml", FmType.SD35, {})

    _, training = run_engine(root)

    assert not {"clip_l", "clip_g", "t5xxl", "ae"} & set(training)
    assert "blocks_to_swap" not in training  # no instance type given: nothing was fitted


def test_a_flux_job_without_its_autoencoder_is_refused(tmp_path: Path) -> None:
    components = {role: name for role, name in FLUX_FILES.items() if role != ComponentRole.AE}
    root = lay_out_job(tmp_path / "opt_ml", FmType.FLUX1, components)

    with pytest.raises(JobFailure, match=r"names no file for the FLUX\.1 autoencoder \(ae\.safetensors\)"):
        read_job_inputs(root)


def test_a_component_the_family_does_not_take_is_refused(tmp_path: Path) -> None:
    components = {**FLUX_FILES, ComponentRole.CLIP_G: "clip_g.safetensors"}
    root = lay_out_job(tmp_path / "opt_ml", FmType.FLUX1, components)

    with pytest.raises(JobFailure, match=re.escape("FLUX.1 jobs take no component clip_g")):
        read_job_inputs(root)


def test_a_component_missing_from_its_channel_is_refused(tmp_path: Path) -> None:
    root = lay_out_job(tmp_path / "opt_ml", FmType.FLUX1, FLUX_FILES, write_components=False)

    with pytest.raises(
        JobFailure, match=re.escape("component ae file ae.safetensors not found in the ae channel")
    ):
        read_job_inputs(root)


@pytest.mark.parametrize(
    ("fm_type", "config", "expected"),
    [
        (FmType.FLUX1, {"clip_skip": 2}, "config.clip_skip does not apply to FLUX.1 models"),
        (FmType.SD35, {"cpu_offload_checkpointing": True}, "config.cpu_offload_checkpointing does not apply"),
        (FmType.FLUX1, {"t5xxl": "/etc/passwd"}, "config.t5xxl is set by the service"),
        (FmType.SD35, {"blocks_to_swap": 40}, "config.blocks_to_swap must be at most 36"),
    ],
)
def test_the_container_refuses_a_config_the_api_would_refuse(
    tmp_path: Path, fm_type: FmType, config: dict[str, Any], expected: str
) -> None:
    components = FLUX_FILES if fm_type == FmType.FLUX1 else {}
    root = lay_out_job(tmp_path / "opt_ml", fm_type, components, raw_config={**FAST, **config})

    with pytest.raises(JobFailure, match="training parameters are invalid") as failure:
        read_job_inputs(root)
    assert expected in str(failure.value)


def _stand_in(
    script: str, training: dict[str, Any], folder: Path, dataset_toml: Path
) -> subprocess.CompletedProcess[str]:
    config = folder / f"{script}.toml"
    config.write_text(toml.dumps(training), encoding="utf-8")
    return subprocess.run(
        [
            sys.executable,
            str(FAKE_SD_SCRIPTS / script),
            "--config_file",
            str(config),
            "--dataset_config",
            str(dataset_toml),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "FAKE_SD_SCRIPTS_MODE": "no_output"},
    )


def test_the_stand_in_refuses_what_each_script_lacks(tmp_path: Path) -> None:
    """The stand-in is as strict as the scripts' parsers: --clip_g is SD 3.5's, not FLUX.1's."""
    from training_container.dataset_staging import validate_dataset

    dataset = validate_dataset(make_tiny_dataset(tmp_path / "data", n_images=1, size=(256, 256)))
    components = {}
    for role in ComponentRole:
        components[role] = tmp_path / f"{role.value}.safetensors"
        components[role].write_bytes(b"placeholder")
    config, _ = validate_config(FAST, FmType.FLUX1)
    files = build_kohya_configs(
        fm_type=FmType.FLUX1,
        config=config,
        dataset=dataset,
        model_path=tmp_path / "base.safetensors",
        output_dir=tmp_path / "out",
        output_name="lora",
        work_dir=tmp_path / "work",
        sd_scripts_dir=FAKE_SD_SCRIPTS,
        tokenizer_cache_dir=None,
        component_paths={role: components[role] for role in FLUX_FILES},
    )
    training = toml.load(files.training_config)

    assert _stand_in("flux_train_network.py", training, tmp_path, files.dataset_config).returncode == 0
    with_clip_g = {**training, "clip_g": str(components[ComponentRole.CLIP_G])}
    refused = _stand_in("flux_train_network.py", with_clip_g, tmp_path, files.dataset_config)
    assert refused.returncode != 0 and "flux_train_network.py has no option(s) ['clip_g']" in refused.stderr
    # FLUX.1's options are not SD 3.5's either.
    sd3 = _stand_in("sd3_train_network.py", training, tmp_path, files.dataset_config)
    assert sd3.returncode != 0 and "sd3_train_network.py has no option(s)" in sd3.stderr
    no_ae = _stand_in(
        "flux_train_network.py",
        {k: v for k, v in training.items() if k != "ae"},
        tmp_path,
        files.dataset_config,
    )
    assert no_ae.returncode != 0 and "flux_train_network.py needs --ae" in no_ae.stderr


def test_every_family_has_a_stand_in_script() -> None:
    for spec in FAMILIES.values():
        assert (FAKE_SD_SCRIPTS / spec.kohya_script).is_file(), spec.kohya_script

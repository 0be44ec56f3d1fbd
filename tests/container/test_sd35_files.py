"""SD 3.5 from the files users upload (the SAI single file, its text encoders inside it or as
clip_l / clip_g / t5xxl components), on tiny random-weight models: agreement with diffusers' own
converter, loading, and a whole diffusers-engine job through the container entrypoint."""

from __future__ import annotations

import json
import logging
import math
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from diffusers.loaders.single_file_utils import convert_sd3_transformer_checkpoint_to_diffusers
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from functions.domain.families import ComponentRole, FmType
from tests.container.sd_scripts_source import (
    needs_sd_scripts,
    sd_scripts_function,
    sd_scripts_string_literals,
)
from tests.container.upload_jobs import SIDE, components_of, lay_out_upload_job
from training_container.engines.families.sd35_files import load_sd35_pipeline
from training_container.engines.families.sd35_layout import sd35_architecture, sd35_to_sai
from training_container.entrypoint import run_job
from training_container.errors import JobFailure
from training_container.testing.tiny_flow_models import (
    build_tiny_sd35_pipeline,
    merge_kohya_lora_into_bfl,
    save_tiny_model_files,
)


def test_the_sai_layout_is_diffusers_own() -> None:
    """diffusers' converter (any width, MMDiT-X dual attention and QK norms included) reads the
    SAI tensors we write back into exactly the model they came from."""
    transformer = build_tiny_sd35_pipeline().transformer
    state = transformer.state_dict()
    sai = sd35_to_sai(state, transformer.config)
    converted = convert_sd3_transformer_checkpoint_to_diffusers(dict(sai))
    assert converted.keys() == state.keys()
    assert all(torch.equal(converted[k], state[k]) for k in state)
    architecture = sd35_architecture(sai)
    for key in (
        "num_layers",
        "attention_head_dim",
        "num_attention_heads",
        "dual_attention_layers",
        "qk_norm",
    ):
        assert architecture[key] == transformer.config[key], key


@pytest.mark.parametrize("inside", [False, True], ids=["text-encoders-as-components", "text-encoders-inside"])
def test_the_uploaded_files_load_as_the_pipeline_they_came_from(tmp_path: Path, inside: bool) -> None:
    files = save_tiny_model_files(FmType.SD35, tmp_path, include_text_encoders=inside)
    assert set(files) == ({"checkpoint"} if inside else {"checkpoint", "clip_l", "clip_g", "t5xxl"})
    reference = build_tiny_sd35_pipeline(seed=0)
    loaded = load_sd35_pipeline(files["checkpoint"], components_of(files), torch.float32)
    for name in ("transformer", "vae", "text_encoder", "text_encoder_2", "text_encoder_3"):
        ours, theirs = getattr(loaded, name).state_dict(), getattr(reference, name).state_dict()
        assert all(torch.equal(ours[k], theirs[k]) for k in theirs if k in ours), name
        assert set(theirs) - set(ours) <= {"encoder.embed_tokens.weight"}, name


def test_a_text_encoder_neither_inside_nor_given_is_named(tmp_path: Path) -> None:
    files = save_tiny_model_files(FmType.SD35, tmp_path)
    components = components_of(files)
    del components[ComponentRole.CLIP_G]
    with pytest.raises(
        JobFailure, match="does not include the CLIP-G text encoder and the job has no clip_g"
    ):
        load_sd35_pipeline(files["checkpoint"], components, torch.float32)


def test_an_sd35_job_from_uploaded_files_writes_sd_scripts_keys_that_change_the_image(tmp_path: Path) -> None:
    files = save_tiny_model_files(FmType.SD35, tmp_path / "files")
    root = lay_out_upload_job(
        tmp_path / "opt_ml",
        FmType.SD35,
        files,
        base_name="sd3.5.safetensors",
        output_name="sd35-lora",
        config={"learning_rate": 1e-2, "unet_lr": 1e-2},
        sample_prompts=[{"prompt": "demo, a square", "width": SIDE, "height": SIDE, "steps": 2, "seed": 1}],
    )
    assert run_job(root) == 0, (root / "output" / "failure").read_text()

    lora = root / "model" / "sd35-lora.safetensors"
    tensors = load_file(str(lora))
    with safe_open(str(lora), framework="pt") as handle:
        metadata = handle.metadata()
    modules = {key.split(".")[0] for key in tensors}
    assert "lora_unet_joint_blocks_0_x_block_attn_qkv" in modules  # fused, as lora_sd3 names it
    assert "lora_unet_joint_blocks_0_x_block_adaLN_modulation_1" in modules
    assert all(m.startswith("lora_unet_joint_blocks_") for m in modules)
    assert metadata["ss_network_module"] == "networks.lora_sd3"
    assert json.loads((root / "model" / "summary.json").read_text())["samples"]

    base = load_file(str(files["checkpoint"]))
    merged_path = tmp_path / "merged.safetensors"
    with safe_open(str(files["checkpoint"]), framework="pt") as handle:
        save_file(merge_kohya_lora_into_bfl(base, tensors), str(merged_path), handle.metadata())
    merged = load_file(str(merged_path))
    assert sum(1 for k in base if not torch.equal(base[k], merged[k])) == len(modules)  # each found its layer

    def render(checkpoint: Path) -> np.ndarray:
        pipe = load_sd35_pipeline(checkpoint, components_of(files), torch.float32)
        generator = torch.Generator().manual_seed(0)
        images = pipe(
            "demo", height=SIDE, width=SIDE, num_inference_steps=2, max_sequence_length=16,
            generator=generator, output_type="np",
        ).images  # fmt: skip
        return np.asarray(images)

    assert not np.allclose(render(files["checkpoint"]), render(merged_path))


@needs_sd_scripts
def test_sd_scripts_reads_the_sai_file_as_sd35_medium_with_its_text_encoders(tmp_path: Path) -> None:
    """sd-scripts' own analyser (library/sd3_utils.py analyze_state_dict_state, lines 30-76) on the
    MMDiT tensors, and the keys its loaders look for to find each text encoder inside the file
    (lines 109, 169, 224) and to split MMDiT and VAE off (lines 83, 253)."""
    files = save_tiny_model_files(FmType.SD35, tmp_path, include_text_encoders=True)
    tensors = load_file(str(files["checkpoint"]))
    analyze = sd_scripts_function(
        "library/sd3_utils.py",
        "analyze_state_dict_state",
        math=math,
        re=re,
        logger=logging.getLogger("sd-scripts"),
        sd3_models=SimpleNamespace(SD3Params=lambda **params: params),
        Dict=dict,
    )
    params = analyze(tensors, "model.diffusion_model.")
    transformer = build_tiny_sd35_pipeline().transformer.config
    assert params["depth"] == transformer.num_layers  # read off the width: 64 per block
    assert params["x_block_self_attn_layers"] == list(transformer.dual_attention_layers)
    assert (params["qk_norm"], params["model_type"]) == ("rms", "5-medium")
    assert params["patch_size"] == transformer.patch_size

    markers = sd_scripts_string_literals("library/sd3_utils.py", "text_encoders.")
    assert {m for m in markers if m.endswith(".weight")} <= set(tensors)
    assert {"model.diffusion_model.", "first_stage_model."} <= sd_scripts_string_literals(
        "library/sd3_utils.py", "_model."
    )
    assert any(k.startswith("first_stage_model.decoder.") for k in tensors)

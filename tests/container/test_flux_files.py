"""FLUX.1 from the files users upload (transformer in BFL's layout, AE, CLIP-L, T5-XXL), on tiny
random-weight models: the layout round trip, agreement with diffusers' own converter at the real
width, loading, and a whole diffusers-engine job through the container entrypoint."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import FluxTransformer2DModel
from diffusers.loaders.single_file_utils import convert_flux_transformer_checkpoint_to_diffusers
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from functions.domain.families import ComponentRole, FmType
from tests.container.sd_scripts_source import needs_sd_scripts, sd_scripts_function
from tests.container.upload_jobs import SIDE, components_of, lay_out_upload_job
from training_container.engines.families.flux1_files import DIFFUSERS_CONFIG_METADATA_KEY, load_flux_pipeline
from training_container.engines.families.flux1_layout import flux_from_bfl, flux_to_bfl
from training_container.entrypoint import run_job
from training_container.errors import JobFailure
from training_container.testing.tiny_flow_models import (
    build_tiny_flux_pipeline,
    merge_kohya_lora_into_bfl,
    save_tiny_model_files,
    tiny_flux_transformer,
)


@pytest.fixture(scope="module")
def flux_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return save_tiny_model_files(FmType.FLUX1, tmp_path_factory.mktemp("flux"), seed=0)


def test_the_bfl_layout_round_trips_every_tensor() -> None:
    model = tiny_flux_transformer(num_layers=2, num_single_layers=2)
    state = model.state_dict()
    back = flux_from_bfl(flux_to_bfl(state, model.config), {k: v.shape for k, v in state.items()})
    assert back.keys() == state.keys()
    assert all(torch.equal(back[k], state[k]) for k in state)


def test_the_layout_is_diffusers_own_at_the_real_width() -> None:
    """diffusers' single-file converter (real width only: it hard-codes 3072) reads our BFL names."""
    with torch.device("meta"):
        model = FluxTransformer2DModel(num_layers=1, num_single_layers=1, guidance_embeds=True)
    state = model.state_dict()
    converted = convert_flux_transformer_checkpoint_to_diffusers(dict(flux_to_bfl(state, model.config)))
    assert converted.keys() == state.keys()
    assert all(converted[k].shape == state[k].shape for k in state)


def test_the_uploaded_files_load_as_the_pipeline_they_came_from(flux_files: dict[str, Path]) -> None:
    reference = build_tiny_flux_pipeline(seed=0)
    loaded = load_flux_pipeline(flux_files["checkpoint"], components_of(flux_files), torch.float32)
    for name in ("transformer", "vae", "text_encoder", "text_encoder_2"):
        ours, theirs = getattr(loaded, name).state_dict(), getattr(reference, name).state_dict()
        assert all(torch.equal(ours[k], theirs[k]) for k in theirs if k in ours), name
        assert set(theirs) - set(ours) <= {"encoder.embed_tokens.weight"}, name
    assert loaded.tokenizer_2("a red square").input_ids == reference.tokenizer_2("a red square").input_ids


def test_a_missing_component_is_named(flux_files: dict[str, Path]) -> None:
    components = components_of(flux_files)
    del components[ComponentRole.AE]
    with pytest.raises(JobFailure, match="no ae component"):
        load_flux_pipeline(flux_files["checkpoint"], components, torch.float32)


def test_a_flux_job_from_uploaded_files_writes_sd_scripts_keys_that_change_the_image(
    tmp_path: Path, flux_files: dict[str, Path]
) -> None:
    prompts = [{"prompt": "demo, a square", "width": SIDE, "height": SIDE, "steps": 2, "seed": 1}]
    root = lay_out_upload_job(
        tmp_path / "opt_ml",
        FmType.FLUX1,
        flux_files,
        base_name="flux1-dev.safetensors",
        output_name="flux-lora",
        sample_prompts=prompts,
    )

    assert run_job(root) == 0, (root / "output" / "failure").read_text()

    lora = root / "model" / "flux-lora.safetensors"
    with safe_open(str(lora), framework="pt") as handle:
        keys, metadata = list(handle.keys()), handle.metadata()
    modules = {key.split(".")[0] for key in keys}
    assert "lora_unet_double_blocks_0_img_attn_qkv" in modules  # fused, as lora_flux names it
    assert "lora_unet_single_blocks_0_linear1" in modules
    assert all(m.startswith(("lora_unet_double_blocks_", "lora_unet_single_blocks_")) for m in modules)
    assert metadata["ss_network_module"] == "networks.lora_flux"
    assert metadata["ss_base_model_version"] == "flux1"
    assert metadata["modelspec.architecture"] == "flux-1-dev/lora"
    assert json.loads((root / "model" / "summary.json").read_text())["samples"]

    # Rendered as ComfyUI applies it: merged into the BFL file by lora_flux's own names.
    base = load_file(str(flux_files["checkpoint"]))
    merged_path = tmp_path / "merged.safetensors"
    with safe_open(str(flux_files["checkpoint"]), framework="pt") as handle:
        save_file(merge_kohya_lora_into_bfl(base, load_file(str(lora))), str(merged_path), handle.metadata())
    touched = sum(1 for k in base if not torch.equal(base[k], load_file(str(merged_path))[k]))
    assert touched == len(modules)  # every LoRA module found its layer by name

    def render(transformer_file: Path) -> np.ndarray:
        pipe = load_flux_pipeline(transformer_file, components_of(flux_files), torch.float32)
        generator = torch.Generator().manual_seed(0)
        images = pipe(
            "demo",
            height=SIDE,
            width=SIDE,
            num_inference_steps=2,
            guidance_scale=1.0,
            max_sequence_length=16,
            generator=generator,
            output_type="np",
        ).images
        return np.asarray(images)

    assert not np.allclose(render(flux_files["checkpoint"]), render(merged_path))


def test_an_unreadable_component_fails_the_job_naming_its_role(
    tmp_path: Path, flux_files: dict[str, Path]
) -> None:
    root = lay_out_upload_job(
        tmp_path / "opt_ml",
        FmType.FLUX1,
        flux_files,
        base_name="flux1-dev.safetensors",
        output_name="flux-lora",
    )
    t5 = root / "input" / "data" / "t5xxl" / flux_files["t5xxl"].name
    t5.write_bytes(t5.read_bytes()[:100])  # an upload cut short

    assert run_job(root) != 0
    failure = (root / "output" / "failure").read_text()
    assert f"component t5xxl file {t5.name} is not a readable .safetensors file" in failure


def test_a_component_of_another_width_is_refused_naming_it(
    tmp_path: Path, flux_files: dict[str, Path]
) -> None:
    """A CLIP file whose tensors disagree with the configuration it is loaded with (here: its
    embedded one, made wider) fails with the component named, not a bare PyTorch error."""
    with safe_open(str(flux_files["clip_l"]), framework="pt") as handle:
        metadata = dict(handle.metadata())
    bundle = json.loads(metadata[DIFFUSERS_CONFIG_METADATA_KEY])
    bundle["text_encoder"]["hidden_size"] *= 2
    metadata[DIFFUSERS_CONFIG_METADATA_KEY] = json.dumps(bundle)
    wider = tmp_path / "clip_l.safetensors"
    save_file(load_file(str(flux_files["clip_l"])), str(wider), metadata)
    components = {**components_of(flux_files), ComponentRole.CLIP_L: wider}

    with pytest.raises(JobFailure, match=r"the CLIP-L text encoder does not match its model's configuration"):
        load_flux_pipeline(flux_files["checkpoint"], components, torch.float32)


@needs_sd_scripts
def test_sd_scripts_reads_the_transformer_as_bfl_dev_with_its_blocks(
    flux_files: dict[str, Path],
) -> None:
    """sd-scripts' own analyser (library/flux_utils.py analyze_checkpoint_state, lines 29-92)."""
    analyze = sd_scripts_function(
        "library/flux_utils.py",
        "analyze_checkpoint_state",
        os=os,
        safe_open=safe_open,
        logger=logging.getLogger("sd-scripts"),
        Tuple=tuple,
        List=list,
    )
    is_diffusers, is_schnell, blocks, _ = analyze(str(flux_files["checkpoint"]))
    transformer = build_tiny_flux_pipeline().transformer.config
    assert (is_diffusers, is_schnell) == (False, False)
    assert blocks == (transformer.num_layers, transformer.num_single_layers)

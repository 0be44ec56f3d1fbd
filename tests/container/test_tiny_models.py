"""The tiny models: single files in the original layout that the engine's loader reads back exactly."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from functions.domain.catalog import FmType
from functions.domain.families import ComponentRole
from training_container.clip_tokenizers import load_clip_tokenizer
from training_container.errors import JobFailure
from training_container.model_loading import detect_family, family_config_bundle, load_base_pipeline
from training_container.testing.tiny_flow_models import save_tiny_model_files
from training_container.testing.tiny_models import build_tiny_pipeline, save_tiny_diffusers_folder

# The single-file (LDM layout) families; FLUX.1's files round-trip in test_flux_files.py.
LDM_FAMILIES = [FmType.SD15, FmType.SDXL]


@pytest.mark.parametrize("fm_type", LDM_FAMILIES)
def test_single_file_round_trips_every_weight(tiny_checkpoints: dict[FmType, Path], fm_type: FmType) -> None:
    reference = build_tiny_pipeline(fm_type)
    loaded = load_base_pipeline(tiny_checkpoints[fm_type], fm_type)

    components = ["unet", "vae", "text_encoder"] + (["text_encoder_2"] if fm_type == FmType.SDXL else [])
    for name in components:
        expected, actual = getattr(reference, name).state_dict(), getattr(loaded, name).state_dict()
        assert set(expected) == set(actual), name
        assert all(torch.equal(expected[key], actual[key]) for key in expected), name


def test_checkpoint_family_is_detected_from_keys(tiny_checkpoints: dict[FmType, Path]) -> None:
    assert detect_family(tiny_checkpoints[FmType.SD15]) == FmType.SD15
    assert detect_family(tiny_checkpoints[FmType.SDXL]) == FmType.SDXL


def test_diffusers_folder_loads_too(tmp_path: Path) -> None:
    folder = save_tiny_diffusers_folder(FmType.SD15, tmp_path / "tiny")

    assert detect_family(folder) == FmType.SD15
    assert list(load_base_pipeline(folder, FmType.SD15).unet.config.block_out_channels) == [32, 64]
    with pytest.raises(JobFailure, match=r"trains a SDXL LoRA but the base model tiny is a SD 1\.5"):
        load_base_pipeline(folder, FmType.SDXL)


def test_offline_tokenizer_matches_clip_ids() -> None:
    assert load_clip_tokenizer()("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]


@pytest.mark.parametrize("fm_type", LDM_FAMILIES)
def test_full_size_configs_are_committed(fm_type: FmType) -> None:
    bundle = family_config_bundle(fm_type)
    expected = {"model_index", "unet", "vae", "text_encoder", "scheduler"}
    if fm_type == FmType.SDXL:
        expected.add("text_encoder_2")
        assert bundle["unet"]["cross_attention_dim"] == 2048
    assert expected <= set(bundle)


def test_flux_full_size_configs_are_committed() -> None:
    """FLUX.1 dev's part configs (model_configs/flux1), read when a file carries none of its own."""
    import json

    from training_container.model_loading import MODEL_CONFIGS_DIR

    folder = MODEL_CONFIGS_DIR / "flux1"
    configs = {p.stem: json.loads(p.read_text()) for p in folder.glob("*.json")}
    assert set(configs) == {"transformer", "vae", "text_encoder", "text_encoder_2", "scheduler"}
    assert (
        configs["transformer"]["num_attention_heads"] * configs["transformer"]["attention_head_dim"] == 3072
    )
    assert configs["vae"]["latent_channels"] == 16 and configs["text_encoder_2"]["d_model"] == 4096


# --- load_base_pipeline: every family from the files users upload, one call
def _roles(files: dict[str, Path]) -> dict[ComponentRole, Path]:
    return {ComponentRole(k): v for k, v in files.items() if k != "checkpoint"}


@pytest.mark.parametrize("fm_type", [FmType.FLUX1, FmType.SD35])
def test_multi_file_families_load_from_their_uploaded_files(tmp_path: Path, fm_type: FmType) -> None:
    files = save_tiny_model_files(fm_type, tmp_path, seed=0)
    reference = build_tiny_pipeline(fm_type, seed=0)
    loaded = load_base_pipeline(files["checkpoint"], fm_type, torch.float32, _roles(files))

    assert type(loaded) is type(reference)
    expected, actual = reference.transformer.state_dict(), loaded.transformer.state_dict()
    assert set(expected) == set(actual)
    assert all(torch.equal(expected[key], actual[key]) for key in expected)
    with pytest.raises(JobFailure, match="clip_l"):
        load_base_pipeline(files["checkpoint"], fm_type, torch.float32, {})


def test_one_file_families_take_no_components(tiny_checkpoints: dict[FmType, Path], tmp_path: Path) -> None:
    t5 = save_tiny_model_files(FmType.FLUX1, tmp_path)["t5xxl"]
    with pytest.raises(JobFailure, match=r"SD 1\.5 models take no component files \(t5xxl\)"):
        load_base_pipeline(tiny_checkpoints[FmType.SD15], FmType.SD15, components={ComponentRole.T5XXL: t5})

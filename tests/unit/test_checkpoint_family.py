"""A checkpoint's family is read from its safetensors header: tensor names and agreeing shapes."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from functions.domain.catalog import FmType
from functions.domain.checkpoint_family import checkpoint_problems, recognise
from tests.integration.workflow import checkpoint_shapes


def _header(shapes: dict[str, list[int]]) -> dict[str, object]:
    return {name: {"dtype": "F16", "shape": shape, "data_offsets": [0, 0]} for name, shape in shapes.items()}


def _file_header(path: Path) -> dict[str, object]:
    raw = path.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    return dict(json.loads(raw[8 : 8 + length]))


@pytest.fixture(scope="module")
def tiny_headers(tmp_path_factory: pytest.TempPathFactory) -> dict[FmType, dict[str, object]]:
    """The project's tiny test models: the real architectures at small widths."""
    pytest.importorskip("diffusers")
    from training_container.testing.tiny_flow_models import save_tiny_model_files

    folder = tmp_path_factory.mktemp("tiny")
    return {
        fm: _file_header(save_tiny_model_files(fm, folder / fm.value)["checkpoint"])
        for fm in TINY_FILE_FAMILIES
    }


# Every family's main upload, built tiny (tests/unit/test_flow_checkpoints.py adds real widths).
TINY_FILE_FAMILIES = list(FmType)


@pytest.mark.parametrize("family", TINY_FILE_FAMILIES)
def test_the_tiny_models_are_recognised_as_their_family(
    tiny_headers: dict[FmType, dict[str, object]], family: FmType
) -> None:
    assert recognise(tiny_headers[family]) is family
    assert checkpoint_problems(tiny_headers[family], family) == []


def test_the_tiny_sdxl_model_is_not_an_sd15_checkpoint(tiny_headers: dict[FmType, dict[str, object]]) -> None:
    assert checkpoint_problems(tiny_headers[FmType.SDXL], FmType.SD15) == [
        "not an SD 1.5 checkpoint: it is an SDXL checkpoint"
    ]
    assert checkpoint_problems(tiny_headers[FmType.SD15], FmType.SDXL) == [
        "not an SDXL checkpoint: it is an SD 1.5 checkpoint"
    ]


def test_real_widths_are_recognised() -> None:
    """SD 1.5's CLIP ViT-L is 768 wide; SDXL's two encoders 768 + 1280 = 2048 (the UNet's context)."""
    sd15 = checkpoint_shapes("sd15", text_width=768)
    assert recognise(_header(sd15)) is FmType.SD15
    sdxl = checkpoint_shapes("sdxl", text_width=768)
    sdxl["conditioner.embedders.1.model.token_embedding.weight"] = [49408, 1280]
    sdxl["model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"] = [640, 2048]
    assert recognise(_header(sdxl)) is FmType.SDXL


def test_a_one_tensor_file_is_refused_naming_what_is_missing() -> None:
    (problem,) = checkpoint_problems(_header({"w": [64]}), FmType.SD15)
    assert problem.startswith(
        "not an SD 1.5 checkpoint: missing the UNet (model.diffusion_model.input_blocks"
    )
    assert "the VAE (first_stage_model.encoder.conv_in.weight" in problem
    assert "the CLIP text encoder (cond_stage_model.transformer.text_model" in problem
    assert recognise(_header({"w": [64]})) is None


def test_only_the_missing_component_is_named() -> None:
    shapes = {k: v for k, v in checkpoint_shapes("sd15").items() if not k.startswith("first_stage_model.")}
    (problem,) = checkpoint_problems(_header(shapes), FmType.SD15)
    assert "missing the VAE" in problem and "UNet" not in problem and "text encoder" not in problem


def test_sdxl_needs_both_text_encoders_and_its_size_conditioning() -> None:
    shapes = {
        k: v for k, v in checkpoint_shapes("sdxl").items() if "embedders.1" not in k and "label_emb" not in k
    }
    (problem,) = checkpoint_problems(_header(shapes), FmType.SDXL)
    assert "the second (OpenCLIP ViT-bigG) text encoder" in problem and "label_emb" in problem


def test_shapes_must_agree() -> None:
    shapes = checkpoint_shapes("sd15")
    shapes["model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"] = [4, 1024]
    (problem,) = checkpoint_problems(_header(shapes), FmType.SD15)
    assert "cross-attention expects 1024-wide text embeddings but its text encoder gives 8" in problem
    inpainting = checkpoint_shapes("sd15") | {"model.diffusion_model.input_blocks.0.0.weight": [4, 9, 3, 3]}
    (problem,) = checkpoint_problems(_header(inpainting), FmType.SD15)
    assert "takes 9 and gives 4 latent channels" in problem


def test_sd2_and_lora_files_are_named_for_what_they_are() -> None:
    sd2 = {k: v for k, v in checkpoint_shapes("sd15").items() if not k.startswith("cond_stage_model.")}
    sd2["cond_stage_model.model.token_embedding.weight"] = [16, 8]
    assert "SD 2.x" in checkpoint_problems(_header(sd2), FmType.SD15)[0]
    lora = {"lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": [4, 320]}
    assert checkpoint_problems(_header(lora), FmType.SD15) == [
        "not an SD 1.5 checkpoint: it is a LoRA, not a checkpoint"
    ]


def test_the_legacy_text_encoder_layout_is_accepted() -> None:
    shapes = {
        k.replace("cond_stage_model.transformer.text_model.", "cond_stage_model.transformer."): v
        for k, v in checkpoint_shapes("sd15").items()
    }
    assert recognise(_header(shapes)) is FmType.SD15

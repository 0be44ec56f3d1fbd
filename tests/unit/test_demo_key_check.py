"""The demo's check that a LoRA carries sd-scripts' names (local_runtime.demo.kohya_key_check): the
``make demo FM_TYPE=flux1 / sd35`` runs pass it, and any name sd-scripts would not write fails it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from functions.domain.catalog import FmType
from local_runtime.demo import DemoError, kohya_key_check

FLUX_MODULES = [
    "lora_unet_double_blocks_0_img_attn_qkv",
    "lora_unet_double_blocks_0_txt_mlp_2",
    "lora_unet_double_blocks_18_img_mod_lin",
    "lora_unet_single_blocks_37_linear1",
    "lora_unet_single_blocks_0_modulation_lin",
]
SD35_MODULES = [
    "lora_unet_joint_blocks_0_x_block_attn_qkv",
    "lora_unet_joint_blocks_0_x_block_attn2_proj",  # SD 3.5 Medium's second attention
    "lora_unet_joint_blocks_23_context_block_mlp_fc1",
    "lora_unet_joint_blocks_1_context_block_adaLN_modulation_1",
]


def lora_file(
    tmp_path: Path, modules: list[str], tensors: tuple[str, ...] = ("lora_down", "lora_up")
) -> Path:
    state: dict[str, torch.Tensor] = {}
    for module in modules:
        for name in tensors:
            state[f"{module}.{name}.weight"] = torch.zeros(2, 2)
        state[f"{module}.alpha"] = torch.tensor(2.0)
    path = tmp_path / "lora.safetensors"
    save_file(state, str(path))
    return path


@pytest.mark.parametrize(("fm_type", "modules"), [(FmType.FLUX1, FLUX_MODULES), (FmType.SD35, SD35_MODULES)])
def test_sd_scripts_names_pass(tmp_path: Path, fm_type: FmType, modules: list[str]) -> None:
    assert kohya_key_check(fm_type, lora_file(tmp_path, modules)).startswith(f"{len(modules)} modules")


@pytest.mark.parametrize(
    ("fm_type", "stray"),
    [
        (FmType.FLUX1, "lora_unet_transformer_blocks_0_attn_to_q"),  # diffusers' split attention
        (FmType.FLUX1, "lora_unet_img_in"),  # outside the double / single blocks
        (FmType.FLUX1, "lora_te1_text_model_encoder_layers_0_mlp_fc1"),  # FLUX.1 trains no text encoder here
        (FmType.SD35, "lora_unet_double_blocks_0_img_attn_qkv"),  # FLUX.1's name
        (FmType.SD35, "lora_unet_joint_blocks_0_x_block_attn_to_q"),
    ],
)
def test_a_name_sd_scripts_would_not_write_fails(tmp_path: Path, fm_type: FmType, stray: str) -> None:
    modules = (FLUX_MODULES if fm_type is FmType.FLUX1 else SD35_MODULES) + [stray]
    with pytest.raises(DemoError, match=stray):
        kohya_key_check(fm_type, lora_file(tmp_path, modules))


def test_the_familys_first_module_must_be_there(tmp_path: Path) -> None:
    with pytest.raises(DemoError, match="lacks sd-scripts' module lora_unet_double_blocks_0_img_attn_qkv"):
        kohya_key_check(FmType.FLUX1, lora_file(tmp_path, FLUX_MODULES[1:]))


def test_each_module_has_down_up_and_alpha(tmp_path: Path) -> None:
    with pytest.raises(DemoError, match=r"without exactly alpha, lora_down\.weight, lora_up\.weight"):
        kohya_key_check(FmType.FLUX1, lora_file(tmp_path, FLUX_MODULES, tensors=("lora_down",)))

"""Load a FLUX.1 / SD 3.5 checkpoint into sd-scripts' own model class, then print the LoRA that
sd-scripts' own ``networks/lora_flux.py`` / ``networks/lora_sd3.py`` makes for it.

Runs with sd-scripts' interpreter, its checkout on the path:

    python flow_lora_keys.py flux1|sd35 CHECKPOINT NETWORK_DIM NETWORK_ALPHA

and prints one JSON object: ``load`` (the keys the file lacks or has beyond the model, which
sd-scripts loads with ``strict=False`` and only logs), ``lora`` (``{key: shape}``, as
``network.state_dict()`` saves them, for a transformer-only LoRA: ``network_train_unet_only``,
the families' default) and ``alphas`` (``{key: value}``).

SD 3.5 goes through ``sd3_utils.load_mmdit`` as ``sd3_train_network.py`` does: it reads the
architecture from the file. FLUX.1's ``flux_utils.load_flow_model`` takes the block counts from
the file but the widths from FLUX.1-dev's config (3,072 wide, 12 B parameters); here the same
steps run with the widths read from the file's tensors, so a tiny file builds a tiny model.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from typing import Any

import torch
from library import flux_models, flux_utils, sd3_utils
from library.safetensors_utils import load_safetensors
from networks import lora_flux, lora_sd3

# How many text encoders each family's load_target_model returns (flux_train_network.py line 160,
# sd3_train_network.py): CLIP-L (SD 1.5); CLIP-L and bigG (SDXL); CLIP-L and T5-XXL (FLUX.1);
# CLIP-L, CLIP-G and T5-XXL (SD 3.5). check_sd_scripts_args.py reads it too. A transformer-only
# LoRA never looks inside them.
TEXT_ENCODERS = {"sd15": 1, "sdxl": 2, "flux1": 2, "sd35": 3}


def _flux_params(state: dict[str, torch.Tensor], num_double: int, num_single: int) -> Any:
    """FLUX.1-dev's params (flux_models.configs) with the widths of the file's tensors."""
    hidden, in_channels = state["img_in.weight"].shape
    head_dim = state["double_blocks.0.img_attn.norm.query_norm.scale"].shape[0]
    base = flux_models.configs[flux_utils.MODEL_NAME_DEV].params
    # RoPE's axes split the head; they hold no weights. FLUX.1's is 16/56/56 of 128.
    axes = [head_dim // 8, head_dim * 7 // 16, head_dim - head_dim // 8 - head_dim * 7 // 16]
    return replace(
        base,
        in_channels=in_channels,
        vec_in_dim=state["vector_in.in_layer.weight"].shape[1],
        context_in_dim=state["txt_in.weight"].shape[1],
        hidden_size=hidden,
        mlp_ratio=state["double_blocks.0.img_mlp.0.weight"].shape[0] / hidden,
        num_heads=hidden // head_dim,
        depth=num_double,
        depth_single_blocks=num_single,
        axes_dim=axes,
        qkv_bias="double_blocks.0.img_attn.qkv.bias" in state,
        guidance_embed="guidance_in.in_layer.weight" in state,
    )


def load_flux(path: str) -> tuple[torch.nn.Module, dict[str, list[str]]]:
    """flux_utils.load_flow_model's steps (lines 95-144) for a BFL file, widths from the file."""
    is_diffusers, _, (num_double, num_single), _ = flux_utils.analyze_checkpoint_state(path)
    assert not is_diffusers, "expected BFL's layout"
    state = load_safetensors(path, device="cpu", disable_mmap=False, dtype=None)
    model = flux_models.Flux(_flux_params(state, num_double, num_single))
    return model, _load_report(model.load_state_dict(state, strict=False))


def load_sd35(path: str) -> tuple[torch.nn.Module, dict[str, list[str]]]:
    """sd3_utils.load_mmdit, as sd3_train_network.py load_target_model calls it (lines 81-84)."""
    state = load_safetensors(path, device="cpu", disable_mmap=False, dtype=None)
    prefix = "model.diffusion_model."
    in_file = {key.removeprefix(prefix) for key in state if key.startswith(prefix)}
    mmdit = sd3_utils.load_mmdit(state, None, "cpu")
    # load_mmdit logs load_state_dict(strict=False)'s report; the same comparison, returned:
    in_model = set(mmdit.state_dict())
    return mmdit, {"missing": sorted(in_model - in_file), "unexpected": sorted(in_file - in_model)}


def _load_report(result: Any) -> dict[str, list[str]]:
    return {"missing": sorted(result.missing_keys), "unexpected": sorted(result.unexpected_keys)}


def main(family: str, path: str, dim: int, alpha: float) -> None:
    model, report = load_flux(path) if family == "flux1" else load_sd35(path)
    module = lora_flux if family == "flux1" else lora_sd3
    text_encoders = [torch.nn.Module() for _ in range(TEXT_ENCODERS[family])]
    # train_network.py lines 678-687, then network.apply_to(text_encoder, unet, train_text_encoder,
    # train_unet) with network_train_unet_only
    network = module.create_network(1.0, dim, alpha, None, text_encoders, model, neuron_dropout=None)
    network.apply_to(text_encoders, model, False, True)
    state = network.state_dict()
    lora = {key: list(tensor.shape) for key, tensor in state.items()}
    alphas = {key: float(tensor) for key, tensor in state.items() if key.endswith(".alpha")}
    print(json.dumps({"load": report, "lora": lora, "alphas": alphas}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))

"""The Kohya LoRA file format: key names and ``ss_*`` metadata, as sd-scripts writes them.

Key names (what A1111, ComfyUI and diffusers' ``load_lora_weights`` expect)::

    lora_unet_<module path with _>.lora_down.weight / .lora_up.weight / .alpha
    lora_te_…  (SD 1.5)      lora_te1_… / lora_te2_…  (SDXL)

SD 1.x UNet module paths follow diffusers' naming (sd-scripts trains SD 1.x on a diffusers-style
UNet: ``lora_unet_down_blocks_0_attentions_0_proj_in``); SDXL UNet paths follow the SGM layout
(sd-scripts' ``sdxl_original_unet``: ``lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q``).
Text-encoder paths are the Hugging Face CLIP module paths under ``text_model``. Which layout a
family's denoiser uses is its adapter's (``training_container.engines.families``) business.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import torch


def text_encoder_lora_name(module_path: str, prefix: str) -> str:
    """``lora_te…_text_model_…``: transformers >= 5.6 drops the ``text_model`` level; Kohya keeps it."""
    path = module_path.removeprefix("text_model.")
    return f"{prefix}_text_model_{path.replace('.', '_')}"


def lora_modules(model: torch.nn.Module) -> dict[str, torch.nn.Module]:
    """PEFT LoRA layers of a model by module path (they own ``lora_A``/``lora_B``)."""
    return {
        name: module
        for name, module in model.named_modules()
        if hasattr(module, "lora_A") and hasattr(module, "lora_B") and len(module.lora_A) > 0
    }


def kohya_tensors(
    model: torch.nn.Module, name_of: Any, dtype: torch.dtype, adapter: str = "default"
) -> dict[str, torch.Tensor]:
    """One model's LoRA weights in Kohya form; ``name_of(module_path) -> lora name``."""
    tensors: dict[str, torch.Tensor] = {}
    for path, layer in lora_modules(model).items():
        module: Any = layer  # a PEFT LoraLayer: lora_A/lora_B/lora_alpha are keyed by adapter
        name = name_of(path)
        down = module.lora_A[adapter].weight.detach()
        up = module.lora_B[adapter].weight.detach()
        tensors[f"{name}.lora_down.weight"] = down.to("cpu", dtype).contiguous()
        tensors[f"{name}.lora_up.weight"] = up.to("cpu", dtype).contiguous()
        tensors[f"{name}.alpha"] = torch.tensor(float(module.lora_alpha[adapter])).to(dtype)
    return tensors


def stringify_metadata(values: Mapping[str, Any]) -> dict[str, str]:
    """safetensors metadata is ``str -> str``; sd-scripts writes JSON for structures."""
    out: dict[str, str] = {}
    for key, value in values.items():
        if value is None:
            continue
        out[key] = json.dumps(value) if isinstance(value, dict | list) else str(value)
    return out

"""sd-scripts' LoRA on a fused layer, trained on diffusers' split layers, and written under its name.

FLUX.1 and SD 3.5 keep fused projections in their original code (BFL's ``img_attn.qkv``,
``single_blocks.N.linear1``; MMDiT's ``attn.qkv``), which is what sd-scripts v0.10.1 trains and
names its LoRA modules after (networks/lora_flux.py, networks/lora_sd3.py). By default
(``split_qkv`` False, lora_flux.py lines 561-563) that is one ``LoRAModule`` per fused layer: one
``lora_down`` (r, in) and one ``lora_up`` (out_q + out_k + out_v, r). diffusers splits the layer
(``to_q``/``to_k``/``to_v``, ``proj_mlp``), all fed the same input, so PEFT puts one LoRA on each
part. ``share_fused_downs`` makes the parts of one fused layer share a single ``lora_A``: the
update of part i is then ``B_i @ A``, and the fused layer's is ``[B_q; B_k; B_v] @ A``, which is
sd-scripts' module exactly: the same parameters, the same rank, the same alpha::

    lora_down = A                               (r, in)
    lora_up   = [B_q; B_k; B_v]                 (out_q + out_k + out_v, r)
    alpha     = alpha                           (alpha / r as trained)

``fused_kohya_tensors`` writes that; the keys, shapes and alphas equal what sd-scripts' own
``create_network`` makes for the same file (tests/container/test_real_sd_scripts_flow_lora.py).
Every loader reads it as sd-scripts' default output (ComfyUI; diffusers'
``_convert_kohya_flux_lora_to_diffusers`` splits the up rows and copies the down).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from training_container.engines.kohya_lora_format import lora_modules


@dataclass(frozen=True)
class LoraPart:
    """Where one diffusers layer's LoRA goes in the sd-scripts file."""

    name: str  # the sd-scripts LoRA module name (``lora_unet_double_blocks_0_img_attn_qkv``)
    index: int = 0  # this layer's place among the fused layer's parts (q, k, v, mlp)
    count: int = 1  # how many diffusers layers make up the fused layer
    # The original layer orders its output halves the other way round (MMDiT's pre-only
    # context modulation is (shift, scale); diffusers' AdaLayerNormContinuous is (scale, shift)).
    swap_output_halves: bool = False


def _swap_halves(up: torch.Tensor) -> torch.Tensor:
    first, second = up.chunk(2, dim=0)
    return torch.cat([second, first], dim=0)


def share_fused_downs(
    model: torch.nn.Module, part_of: Callable[[str], LoraPart], adapter: str = "default"
) -> None:
    """Give the parts of each fused layer one ``lora_A`` (the first part's): see the module doc.

    Call it right after PEFT's injection, before the trainable parameters are collected (a shared
    module's parameters are listed once by ``named_parameters``)."""
    downs: dict[str, Any] = {}
    for path, layer in lora_modules(model).items():
        part = part_of(path)
        if part.count == 1:
            continue
        module: Any = layer  # a PEFT LoraLayer: lora_A is a ModuleDict keyed by adapter
        shared = downs.setdefault(part.name, module.lora_A[adapter])
        if shared.weight.shape != module.lora_A[adapter].weight.shape:
            raise ValueError(f"{path}: its input differs from the other parts of {part.name}")
        module.lora_A[adapter] = shared


def fused_kohya_tensors(
    model: torch.nn.Module,
    part_of: Callable[[str], LoraPart],
    dtype: torch.dtype,
    adapter: str = "default",
) -> dict[str, torch.Tensor]:
    """One model's PEFT LoRA weights under sd-scripts' names, a fused layer's parts as its one module."""
    groups: dict[str, dict[int, tuple[torch.Tensor, torch.Tensor, float]]] = defaultdict(dict)
    counts: dict[str, int] = {}
    for path, layer in lora_modules(model).items():
        module: Any = layer  # a PEFT LoraLayer: lora_A/lora_B/lora_alpha are keyed by adapter
        part = part_of(path)
        down = module.lora_A[adapter].weight.detach().float()
        up = module.lora_B[adapter].weight.detach().float()
        if part.swap_output_halves:
            up = _swap_halves(up)
        if part.index in groups[part.name] or counts.setdefault(part.name, part.count) != part.count:
            raise ValueError(f"LoRA part {part} of {path} conflicts with another layer")
        groups[part.name][part.index] = (down, up, float(module.lora_alpha[adapter]))
    tensors: dict[str, torch.Tensor] = {}
    for name, parts in groups.items():
        if sorted(parts) != list(range(counts[name])):
            # A partial fusion would write a LoRA that changes only some of q/k/v under a name
            # every loader reads as all of them.
            raise ValueError(f"{name}: trained parts {sorted(parts)} of {counts[name]}")
        ordered = [parts[index] for index in range(counts[name])]
        down, _, alpha = ordered[0]
        if any(not torch.equal(other, down) or other_alpha != alpha for other, _, other_alpha in ordered):
            raise ValueError(f"{name}: its parts do not share one down projection (see share_fused_downs)")
        up = torch.cat([up for _, up, _ in ordered], dim=0)
        tensors[f"{name}.lora_down.weight"] = down.to("cpu", dtype).contiguous()
        tensors[f"{name}.lora_up.weight"] = up.to("cpu", dtype).contiguous()
        tensors[f"{name}.alpha"] = torch.tensor(alpha).to(dtype)
    return tensors

"""Exporting PEFT LoRA weights trained on diffusers' split layers under sd-scripts' fused names.

FLUX.1 and SD 3.5 keep fused projections in their original code (BFL's ``img_attn.qkv``,
``single_blocks.N.linear1``; MMDiT's ``attn.qkv``), which is what sd-scripts v0.10.1 trains and
names its LoRA modules after (networks/lora_flux.py, networks/lora_sd3.py). diffusers splits
them (``to_q``/``to_k``/``to_v``, ``proj_mlp``), so PEFT trains one LoRA per part. The parts of
one fused layer are written as one LoRA module that computes exactly the same update::

    lora_down = [A_q; A_k; A_v]                 (n*r, in)
    lora_up   = block_diag(B_q, B_k, B_v)       (out_q + out_k + out_v, n*r)
    alpha     = n * alpha_part                  (so alpha / rank = alpha_part / r, unchanged)

That is the layout sd-scripts itself saves with ``split_qkv=True`` (lora_flux.py
``LoRANetwork.state_dict``, lines 1090-1130: ``torch.cat`` of the downs, block-diagonal up), and
the one diffusers' ``_convert_kohya_flux_lora_to_diffusers`` recognises as "sparse" and splits
back. sd-scripts keeps the per-part alpha there while the rank triples, so a file it saves with
``split_qkv`` is applied at a third of its trained strength by loaders that take the rank from
``lora_down`` (ComfyUI, diffusers, sd-scripts' own ``create_network_from_weights``); scaling
alpha by ``n`` keeps the trained update exact instead.
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


def fused_kohya_tensors(
    model: torch.nn.Module,
    part_of: Callable[[str], LoraPart],
    dtype: torch.dtype,
    adapter: str = "default",
) -> dict[str, torch.Tensor]:
    """One model's PEFT LoRA weights under sd-scripts' names, fusing split layers (see module doc)."""
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
        alphas = {alpha / down.shape[0] for down, _, alpha in ordered}
        if len(alphas) != 1:
            raise ValueError(f"{name}: parts trained with different alpha / rank")
        down = torch.cat([down for down, _, _ in ordered], dim=0)
        up = torch.block_diag(*[up for _, up, _ in ordered])
        alpha = alphas.pop() * down.shape[0]  # the parts' alpha / rank at the fused rank
        tensors[f"{name}.lora_down.weight"] = down.to("cpu", dtype).contiguous()
        tensors[f"{name}.lora_up.weight"] = up.to("cpu", dtype).contiguous()
        tensors[f"{name}.alpha"] = torch.tensor(alpha).to(dtype)
    return tensors

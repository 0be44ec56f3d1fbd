"""FLUX.1's transformer in Black Forest Labs' layout (the file users upload) and in diffusers'.

Users upload ``flux1-dev.safetensors`` as BFL ship it, the layout sd-scripts loads
(library/flux_models.py, flux_utils.load_flow_model). The diffusers engine trains diffusers'
``FluxTransformer2DModel``. diffusers' own single-file converter
(``single_file_utils.convert_flux_transformer_checkpoint_to_diffusers``) hard-codes the real
model's width (``inner_dim = 3072``) to split ``linear1``, so it cannot read the project's tiny
test models; this table maps both ways at any width, splitting fused tensors by the target
model's own parameter shapes. The mapping is the same one diffusers' converter applies.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import torch

from functions.domain.checkpoint_layout import UNET
from training_container.engines.families.fused_layout import Fused, from_original, linear_pair, to_original


def _double_block(i: int) -> Iterator[Fused]:
    b, d = f"double_blocks.{i}", f"transformer_blocks.{i}"
    yield from linear_pair(f"{b}.img_mod.lin", f"{d}.norm1.linear")
    yield from linear_pair(f"{b}.txt_mod.lin", f"{d}.norm1_context.linear")
    yield from linear_pair(f"{b}.img_attn.qkv", f"{d}.attn.to_q", f"{d}.attn.to_k", f"{d}.attn.to_v")
    yield from linear_pair(
        f"{b}.txt_attn.qkv", f"{d}.attn.add_q_proj", f"{d}.attn.add_k_proj", f"{d}.attn.add_v_proj"
    )
    yield from linear_pair(f"{b}.img_attn.proj", f"{d}.attn.to_out.0")
    yield from linear_pair(f"{b}.txt_attn.proj", f"{d}.attn.to_add_out")
    for stream, mlp in (("img", "ff"), ("txt", "ff_context")):
        yield from linear_pair(f"{b}.{stream}_mlp.0", f"{d}.{mlp}.net.0.proj")
        yield from linear_pair(f"{b}.{stream}_mlp.2", f"{d}.{mlp}.net.2")
    yield Fused(f"{b}.img_attn.norm.query_norm.scale", (f"{d}.attn.norm_q.weight",))
    yield Fused(f"{b}.img_attn.norm.key_norm.scale", (f"{d}.attn.norm_k.weight",))
    yield Fused(f"{b}.txt_attn.norm.query_norm.scale", (f"{d}.attn.norm_added_q.weight",))
    yield Fused(f"{b}.txt_attn.norm.key_norm.scale", (f"{d}.attn.norm_added_k.weight",))


def _single_block(i: int) -> Iterator[Fused]:
    b, d = f"single_blocks.{i}", f"single_transformer_blocks.{i}"
    yield from linear_pair(f"{b}.modulation.lin", f"{d}.norm.linear")
    yield from linear_pair(
        f"{b}.linear1", f"{d}.attn.to_q", f"{d}.attn.to_k", f"{d}.attn.to_v", f"{d}.proj_mlp"
    )
    yield from linear_pair(f"{b}.linear2", f"{d}.proj_out")
    yield Fused(f"{b}.norm.query_norm.scale", (f"{d}.attn.norm_q.weight",))
    yield Fused(f"{b}.norm.key_norm.scale", (f"{d}.attn.norm_k.weight",))


def flux_table(num_layers: int, num_single_layers: int, guidance: bool) -> list[Fused]:
    """Every tensor of a FLUX.1 transformer with that many blocks (schnell: no guidance)."""
    table = [
        *linear_pair("time_in.in_layer", "time_text_embed.timestep_embedder.linear_1"),
        *linear_pair("time_in.out_layer", "time_text_embed.timestep_embedder.linear_2"),
        *linear_pair("vector_in.in_layer", "time_text_embed.text_embedder.linear_1"),
        *linear_pair("vector_in.out_layer", "time_text_embed.text_embedder.linear_2"),
        *linear_pair("txt_in", "context_embedder"),
        *linear_pair("img_in", "x_embedder"),
        *linear_pair("final_layer.linear", "proj_out"),
        *linear_pair("final_layer.adaLN_modulation.1", "norm_out.linear", swap=True),
    ]
    if guidance:
        table += [
            *linear_pair("guidance_in.in_layer", "time_text_embed.guidance_embedder.linear_1"),
            *linear_pair("guidance_in.out_layer", "time_text_embed.guidance_embedder.linear_2"),
        ]
    for i in range(num_layers):
        table += _double_block(i)
    for i in range(num_single_layers):
        table += _single_block(i)
    return table


def flux_to_bfl(state: Mapping[str, torch.Tensor], config: Mapping[str, object]) -> dict[str, torch.Tensor]:
    """A diffusers FluxTransformer2DModel state dict in BFL's layout (what users upload)."""
    table = flux_table(
        int(str(config["num_layers"])), int(str(config["num_single_layers"])), bool(config["guidance_embeds"])
    )
    return to_original(table, state)


def _block_count(keys: list[str], prefix: str) -> int:
    indices = {int(k.split(".")[1]) for k in keys if k.startswith(prefix)}
    return max(indices) + 1 if indices else 0


def flux_architecture(bfl_keys: list[str]) -> tuple[int, int, bool]:
    """Double blocks, single blocks and whether it has a guidance embedding (dev: yes, schnell: no)."""
    keys = [k.removeprefix(UNET) for k in bfl_keys]
    guidance = any(k.startswith("guidance_in.") for k in keys)  # sd-scripts flux_utils.py line 63
    return _block_count(keys, "double_blocks."), _block_count(keys, "single_blocks."), guidance


def flux_from_bfl(
    bfl: Mapping[str, torch.Tensor], target_shapes: Mapping[str, torch.Size]
) -> dict[str, torch.Tensor]:
    """BFL tensors as a diffusers state dict, fused tensors split by the target model's shapes.

    ``KeyError`` names a tensor the file lacks (a truncated or foreign file).
    """
    plain = {k.removeprefix(UNET): v for k, v in bfl.items()}
    return from_original(flux_table(*flux_architecture(list(plain))), plain, target_shapes)

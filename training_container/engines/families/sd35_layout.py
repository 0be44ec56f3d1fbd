"""SD 3.5's MMDiT in Stability AI's single-file layout (what users upload) and in diffusers'.

``sd3.5_large.safetensors`` holds the MMDiT under ``model.diffusion_model.`` in SAI's names
(sd-scripts library/sd3_models.py, loaded by library/sd3_utils.py ``load_mmdit``) and the VAE
under ``first_stage_model.``. This table maps the MMDiT both ways at any width; it is the mapping
diffusers' ``single_file_utils.convert_sd3_transformer_checkpoint_to_diffusers`` applies
(tests/container/test_sd35_files.py checks the two agree; fused_layout applies it), and the
architecture is read from the file's own tensors, as diffusers' converter and sd-scripts'
``analyze_state_dict_state`` do.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import torch

from functions.domain.checkpoint_layout import UNET
from training_container.engines.families.fused_layout import Fused, from_original, linear_pair, to_original


def _joint_block(i: int, last: bool, dual: bool, qk_norm: bool) -> Iterator[Fused]:
    x, c, d = f"joint_blocks.{i}.x_block", f"joint_blocks.{i}.context_block", f"transformer_blocks.{i}"
    yield from linear_pair(f"{x}.attn.qkv", f"{d}.attn.to_q", f"{d}.attn.to_k", f"{d}.attn.to_v")
    yield from linear_pair(
        f"{c}.attn.qkv", f"{d}.attn.add_q_proj", f"{d}.attn.add_k_proj", f"{d}.attn.add_v_proj"
    )
    yield from linear_pair(f"{x}.attn.proj", f"{d}.attn.to_out.0")
    yield from linear_pair(f"{x}.adaLN_modulation.1", f"{d}.norm1.linear")
    yield from linear_pair(f"{x}.mlp.fc1", f"{d}.ff.net.0.proj")
    yield from linear_pair(f"{x}.mlp.fc2", f"{d}.ff.net.2")
    # The last context block is "pre only": no output projection or MLP, and a (shift, scale)
    # modulation that diffusers keeps as (scale, shift).
    yield from linear_pair(f"{c}.adaLN_modulation.1", f"{d}.norm1_context.linear", swap=last)
    if not last:
        yield from linear_pair(f"{c}.attn.proj", f"{d}.attn.to_add_out")
        yield from linear_pair(f"{c}.mlp.fc1", f"{d}.ff_context.net.0.proj")
        yield from linear_pair(f"{c}.mlp.fc2", f"{d}.ff_context.net.2")
    if qk_norm:
        yield Fused(f"{x}.attn.ln_q.weight", (f"{d}.attn.norm_q.weight",))
        yield Fused(f"{x}.attn.ln_k.weight", (f"{d}.attn.norm_k.weight",))
        yield Fused(f"{c}.attn.ln_q.weight", (f"{d}.attn.norm_added_q.weight",))
        yield Fused(f"{c}.attn.ln_k.weight", (f"{d}.attn.norm_added_k.weight",))
    if dual:  # SD 3.5 Medium's MMDiT-X blocks
        yield from linear_pair(f"{x}.attn2.qkv", f"{d}.attn2.to_q", f"{d}.attn2.to_k", f"{d}.attn2.to_v")
        yield from linear_pair(f"{x}.attn2.proj", f"{d}.attn2.to_out.0")
        if qk_norm:
            yield Fused(f"{x}.attn2.ln_q.weight", (f"{d}.attn2.norm_q.weight",))
            yield Fused(f"{x}.attn2.ln_k.weight", (f"{d}.attn2.norm_k.weight",))


def sd35_table(num_layers: int, dual_layers: tuple[int, ...], qk_norm: bool) -> list[Fused]:
    table = [
        Fused("pos_embed", ("pos_embed.pos_embed",)),
        *linear_pair("x_embedder.proj", "pos_embed.proj"),
        *linear_pair("t_embedder.mlp.0", "time_text_embed.timestep_embedder.linear_1"),
        *linear_pair("t_embedder.mlp.2", "time_text_embed.timestep_embedder.linear_2"),
        *linear_pair("y_embedder.mlp.0", "time_text_embed.text_embedder.linear_1"),
        *linear_pair("y_embedder.mlp.2", "time_text_embed.text_embedder.linear_2"),
        *linear_pair("context_embedder", "context_embedder"),
        *linear_pair("final_layer.linear", "proj_out"),
        *linear_pair("final_layer.adaLN_modulation.1", "norm_out.linear", swap=True),
    ]
    for i in range(num_layers):
        table += _joint_block(i, i == num_layers - 1, i in dual_layers, qk_norm)
    return table


def sd35_architecture(sai: Mapping[str, Any]) -> dict[str, Any]:
    """The diffusers SD3Transformer2DModel config these SAI tensors describe (shapes: any object
    with ``.shape`` or a list)."""
    shape = {k.removeprefix(UNET): list(getattr(v, "shape", v)) for k, v in sai.items() if k.startswith(UNET)}
    layers = 1 + max(int(k.split(".")[1]) for k in shape if k.startswith("joint_blocks."))
    dual = tuple(sorted({int(k.split(".")[1]) for k in shape if ".attn2." in k}))
    hidden, in_channels, patch = shape["x_embedder.proj.weight"][:3]
    ln_q = shape.get("joint_blocks.0.x_block.attn.ln_q.weight")
    head_dim = ln_q[0] if ln_q else 64
    positions = shape["pos_embed"][1]
    return {
        "sample_size": 128,
        "patch_size": patch,
        "in_channels": in_channels,
        "num_layers": layers,
        "attention_head_dim": head_dim,
        "num_attention_heads": hidden // head_dim,
        "joint_attention_dim": shape["context_embedder.weight"][1],
        "caption_projection_dim": shape["context_embedder.weight"][0],
        "pooled_projection_dim": shape["y_embedder.mlp.0.weight"][1],
        "out_channels": shape["final_layer.linear.weight"][0] // (patch * patch),
        "pos_embed_max_size": round(positions**0.5),
        "dual_attention_layers": dual,
        "qk_norm": "rms_norm" if ln_q else None,
    }


def sd35_to_sai(state: Mapping[str, torch.Tensor], config: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """A diffusers SD3Transformer2DModel state dict as an SAI single file's MMDiT tensors."""
    table = sd35_table(
        int(config["num_layers"]), tuple(config["dual_attention_layers"]), config.get("qk_norm") is not None
    )
    return to_original(table, state, UNET)


def sd35_from_sai(
    sai: Mapping[str, torch.Tensor], target_shapes: Mapping[str, torch.Size]
) -> dict[str, torch.Tensor]:
    """SAI MMDiT tensors as a diffusers state dict (fused qkv split by the target's shapes)."""
    config = sd35_architecture(sai)
    plain = {k.removeprefix(UNET): v for k, v in sai.items() if k.startswith(UNET)}
    table = sd35_table(config["num_layers"], config["dual_attention_layers"], config["qk_norm"] is not None)
    return from_original(table, plain, target_shapes)

"""Diffusers -> original (LDM/SGM) checkpoint key layout, the layout users upload.

Used to name SDXL LoRA modules the way sd-scripts does, and to write the tiny test
models as single files. It is the inverse of diffusers' single-file loader
(``diffusers.loaders.single_file_utils``):
``tests/container`` round-trips every tensor through ``from_single_file`` to prove it.
Real checkpoints already come in this layout.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import torch

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."

_UNET_FIXED = {
    "time_embedding.linear_1": "time_embed.0",
    "time_embedding.linear_2": "time_embed.2",
    "add_embedding.linear_1": "label_emb.0.0",
    "add_embedding.linear_2": "label_emb.0.2",
    "conv_in": "input_blocks.0.0",
    "conv_norm_out": "out.0",
    "conv_out": "out.2",
}
_RESNET_PARTS = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "conv_shortcut": "skip_connection",
}


def _resnet_tail(tail: str) -> str:
    head, _, rest = tail.partition(".")
    return f"{_RESNET_PARTS.get(head, head)}.{rest}"


def unet_module_to_ldm(path: str, config: Mapping[str, Any]) -> str:
    """One diffusers UNet module/parameter path -> its LDM/SGM path (no prefix).

    Also names SDXL LoRA modules the way sd-scripts does (``input_blocks.4.1.…``).
    """
    for diffusers_name, ldm_name in _UNET_FIXED.items():
        if path == diffusers_name or path.startswith(diffusers_name + "."):
            return ldm_name + path[len(diffusers_name) :]
    per_block = int(config["layers_per_block"]) + 1
    if match := re.fullmatch(r"down_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)", path):
        block, kind, layer, tail = int(match[1]), match[2], int(match[3]), match[4]
        index = block * per_block + layer + 1
        return (
            f"input_blocks.{index}.0.{_resnet_tail(tail)}"
            if kind == "resnets"
            else (f"input_blocks.{index}.1.{tail}")
        )
    if match := re.fullmatch(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)", path):
        return f"input_blocks.{(int(match[1]) + 1) * per_block}.0.op.{match[2]}"
    if match := re.fullmatch(r"mid_block\.resnets\.(\d+)\.(.+)", path):
        return f"middle_block.{int(match[1]) * 2}.{_resnet_tail(match[2])}"
    if match := re.fullmatch(r"mid_block\.attentions\.0\.(.+)", path):
        return f"middle_block.1.{match[1]}"
    if match := re.fullmatch(r"up_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)", path):
        block, kind, layer, tail = int(match[1]), match[2], int(match[3]), match[4]
        index = block * per_block + layer
        return (
            f"output_blocks.{index}.0.{_resnet_tail(tail)}"
            if kind == "resnets"
            else (f"output_blocks.{index}.1.{tail}")
        )
    if match := re.fullmatch(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)", path):
        block = int(match[1])
        index = block * per_block + per_block - 1
        has_attention = str(config["up_block_types"][block]).startswith("CrossAttn")
        return f"output_blocks.{index}.{2 if has_attention else 1}.conv.{match[2]}"
    raise ValueError(f"no LDM name for UNet parameter {path!r}")


def _vae_to_ldm(path: str, config: Mapping[str, Any]) -> str:
    renames = {"conv_norm_out": "norm_out", "conv_shortcut": "nin_shortcut"}
    path = re.sub(r"mid_block\.resnets\.(\d+)", lambda m: f"mid.block_{int(m[1]) + 1}", path)
    path = path.replace("mid_block.attentions.0.", "mid.attn_1.")
    path = re.sub(r"encoder\.down_blocks\.(\d+)\.resnets\.", r"encoder.down.\1.block.", path)
    path = re.sub(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.", r"encoder.down.\1.downsample.", path)
    up_count = len(config["up_block_types"])

    def _up(match: re.Match[str]) -> str:
        return (
            f"decoder.up.{up_count - 1 - int(match[1])}.{'block' if match[2] == 'resnets' else 'upsample'}."
        )

    path = re.sub(r"decoder\.up_blocks\.(\d+)\.(resnets|upsamplers\.0)\.", _up, path)
    for old, new in renames.items():
        path = path.replace(old, new)
    if ".attn_1." in path:
        for old, new in (
            ("group_norm", "norm"),
            ("to_q", "q"),
            ("to_k", "k"),
            ("to_v", "v"),
            ("to_out.0", "proj_out"),
        ):
            path = path.replace(f".{old}.", f".{new}.")
    return path


def vae_to_ldm(state: Mapping[str, torch.Tensor], config: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """AutoencoderKL weights in the LDM layout (attention projections as 1x1 convolutions)."""
    out: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        name = _vae_to_ldm(key, config)
        is_attention_projection = ".attn_1." in name and tensor.ndim == 2
        out[VAE_PREFIX + name] = tensor[:, :, None, None] if is_attention_projection else tensor
    return out


def unet_to_ldm(state: Mapping[str, torch.Tensor], config: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    return {UNET_PREFIX + unet_module_to_ldm(key, config): tensor for key, tensor in state.items()}


def clip_to_ldm(state: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """HF CLIPTextModel weights under ``prefix``, always with the ``text_model.`` level."""
    out: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        if key.endswith("position_ids"):
            continue
        name = key if key.startswith("text_model.") else f"text_model.{key}"
        out[prefix + name] = tensor
    return out


def clip_to_open_clip(state: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """HF CLIPTextModelWithProjection weights -> open_clip's layout (SDXL's second text encoder)."""
    out: dict[str, torch.Tensor] = {}
    plain = {k.removeprefix("text_model."): v for k, v in state.items() if not k.endswith("position_ids")}
    out[prefix + "positional_embedding"] = plain["embeddings.position_embedding.weight"]
    out[prefix + "token_embedding.weight"] = plain["embeddings.token_embedding.weight"]
    out[prefix + "ln_final.weight"] = plain["final_layer_norm.weight"]
    out[prefix + "ln_final.bias"] = plain["final_layer_norm.bias"]
    out[prefix + "text_projection"] = plain["text_projection.weight"].T.contiguous()
    layers = sorted({int(m[1]) for k in plain if (m := re.match(r"encoder\.layers\.(\d+)\.", k))})
    parts = {"layer_norm1": "ln_1", "layer_norm2": "ln_2", "mlp.fc1": "mlp.c_fc", "mlp.fc2": "mlp.c_proj"}
    for layer in layers:
        src, dst = f"encoder.layers.{layer}.", f"{prefix}transformer.resblocks.{layer}."
        for kind in ("weight", "bias"):
            qkv = [plain[f"{src}self_attn.{p}_proj.{kind}"] for p in ("q", "k", "v")]
            out[f"{dst}attn.in_proj_{kind}"] = torch.cat(qkv, dim=0)
            out[f"{dst}attn.out_proj.{kind}"] = plain[f"{src}self_attn.out_proj.{kind}"]
            for hf_name, oc_name in parts.items():
                out[f"{dst}{oc_name}.{kind}"] = plain[f"{src}{hf_name}.{kind}"]
    return out

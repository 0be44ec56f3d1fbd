"""Write a full-size, random-weight SD 1.5 checkpoint that sd-scripts loads (LDM key layout).

sd-scripts builds its model architectures in code and loads state dicts strictly, so tiny test
models cannot load in it; a full-size (about 1.07 B parameters) checkpoint with random weights
exercises the real loading and training code. The checkpoint is made with sd-scripts' *own*
model classes and converters (``library.model_util``), so its layout is exactly what
``load_models_from_stable_diffusion_checkpoint`` reads back.

Runs with the sd-scripts interpreter (``$SD_SCRIPTS_PYTHON``) and ``$SD_SCRIPTS_DIR`` on the path:

    python make_random_sd15.py OUTPUT.safetensors
"""

from __future__ import annotations

import sys

import torch
from diffusers import AutoencoderKL
from library import model_util
from library.original_unet import UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel


def main(output: str) -> None:
    torch.manual_seed(0)
    unet = UNet2DConditionModel(**model_util.create_unet_diffusers_config(False))
    vae = AutoencoderKL(**model_util.create_vae_diffusers_config())
    # The same text-encoder configuration sd-scripts builds when it loads an SD 1.x checkpoint.
    text_encoder = CLIPTextModel._from_config(
        CLIPTextConfig(
            vocab_size=49408,
            hidden_size=768,
            intermediate_size=3072,
            num_hidden_layers=12,
            num_attention_heads=12,
            max_position_embeddings=77,
            hidden_act="quick_gelu",
            layer_norm_eps=1e-05,
            projection_dim=768,
        )
    )
    model_util.save_stable_diffusion_checkpoint(
        False, output, text_encoder, unet, None, 0, 0, None, save_dtype=None, vae=vae
    )
    parameters = sum(p.numel() for m in (unet, vae, text_encoder) for p in m.parameters())
    print(f"wrote {output}: {parameters} parameters")


if __name__ == "__main__":
    main(sys.argv[1])

"""Print the state-dict keys sd-scripts' own ``networks/lora.py`` gives an SD 1.5 LoRA.

Runs with sd-scripts' interpreter and checkout on the path. The architectures are built with
sd-scripts' classes and random weights (the keys depend on the architecture, not the weights):

    python lora_keys.py NETWORK_DIM NETWORK_ALPHA [unet_only]
"""

from __future__ import annotations

import json
import sys

from library import model_util
from library.original_unet import UNet2DConditionModel
from networks import lora
from transformers import CLIPTextConfig, CLIPTextModel


def main(dim: int, alpha: float, unet_only: bool) -> None:
    unet = UNet2DConditionModel(**model_util.create_unet_diffusers_config(False))
    text_encoder = CLIPTextModel(
        CLIPTextConfig(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12)
    )
    network = lora.create_network(1.0, dim, alpha, None, text_encoder, unet)
    # train_network.py: network.apply_to(text_encoder, unet, train_text_encoder, train_unet)
    network.apply_to(text_encoder, unet, not unet_only, True)
    print(json.dumps(sorted(network.state_dict())))


if __name__ == "__main__":
    main(int(sys.argv[1]), float(sys.argv[2]), len(sys.argv) > 3 and sys.argv[3] == "unet_only")

"""A stand-in for sd-scripts' train_network.py, for unit tests of the kohya wrapper only.

It reads the same TOML files, prints the console output sd-scripts prints (tqdm bar redrawn
with carriage returns) and writes a Kohya-format LoRA, or misbehaves as FAKE_SD_SCRIPTS_MODE
asks: ``ok`` | ``no_output`` (exits 0 without a LoRA, like sd-scripts with no images) | ``crash``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import toml
import torch
from safetensors.torch import save_file

parser = argparse.ArgumentParser()
parser.add_argument("--config_file", required=True)
parser.add_argument("--dataset_config", required=True)
args = parser.parse_args()
config = toml.load(args.config_file)
dataset = toml.load(args.dataset_config)
mode = os.environ.get("FAKE_SD_SCRIPTS_MODE", "ok")
assert dataset["datasets"][0]["subsets"], "no subsets"

print("prepare optimizer, data loader etc.")
print("caching latents.")
print("  total optimization steps / 学習ステップ数: 4", flush=True)
if mode == "crash":
    print("RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB", flush=True)
    sys.exit(1)
for epoch in (1, 2):
    print(f"\nepoch {epoch}/2\n", flush=True)
    for step in (2 * epoch - 1, 2 * epoch):
        timing = f"[00:0{step}<00:0{4 - step},  1.74it/s, avr_loss=0.0{step}5]"
        bar = f"steps:  {step * 25}%|██▌   | {step}/4 {timing}"
        sys.stdout.write("\r" + bar)
        sys.stdout.flush()
print()
if mode == "ok":
    out = Path(config["output_dir"]) / f"{config['output_name']}.safetensors"
    out.parent.mkdir(parents=True, exist_ok=True)
    name = "lora_unet_down_blocks_0_attentions_0_proj_in"
    tensors = {
        f"{name}.lora_down.weight": torch.zeros(4, 8),
        f"{name}.lora_up.weight": torch.zeros(8, 4),
        f"{name}.alpha": torch.tensor(2.0),
    }
    save_file(
        tensors, str(out), metadata={"ss_network_module": config["network_module"], "ss_network_dim": "4"}
    )

"""A stand-in for sd-scripts' train_network.py, for unit tests of the kohya wrapper only.

It reads the same TOML files, prints the console output sd-scripts prints (tqdm bar redrawn
with carriage returns) and writes a Kohya-format LoRA, or misbehaves as FAKE_SD_SCRIPTS_MODE
asks: ``ok`` | ``no_output`` (exits 0 without a LoRA, like sd-scripts with no images) | ``crash``
| ``corrupt_epoch`` (an intermediate LoRA that is not a safetensors file) | ``replay`` (prints the
recording of a real sd-scripts run named by FAKE_SD_SCRIPTS_RECORDING, see
``tests/container/real_engine/record_failures.py``, and exits with its status).

Like sd-scripts it saves ``<output_name>-00000N.safetensors`` when ``save_every_n_epochs`` divides
an epoch before the last, and renders ``--sample_prompts`` (parsed the way sd-scripts parses each
line: split on `` --``, options ``n w h d s l g``) into ``<output_dir>/sample/`` when
``sample_every_n_epochs`` divides the epoch.

Like sd-scripts' own parser it knows its options: every key of the training TOML must be one the
script it stands in for accepts (the options fixture extracted from the pinned release, keyed by
the script's name: this file runs as ``train_network.py``, ``sdxl_train_network.py``,
``flux_train_network.py`` or ``sd3_train_network.py``), and every dataset TOML key one of
config_util's schema. ``flux_train_network.py`` needs ``ae``, ``clip_l`` and ``t5xxl`` files (its
loaders take the paths), ``sd3_train_network.py`` only those it is given. The LoRA it writes is named
like the module the TOML names: ``networks.lora`` (SD U-Net), ``networks.lora_flux`` (FLUX.1 double
and single blocks) or ``networks.lora_sd3`` (MMDiT joint blocks), plus a CLIP-L text-encoder key
when the text encoder is trained.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

import toml
import torch
from PIL import Image
from safetensors.torch import save_file

# library/train_util.py line_to_prompt_dict: the options the service writes (g: FLUX.1's guidance).
SAMPLE_OPTION = re.compile(r"^(?:n .+|w \d+|h \d+|d \d+|s \d+|l [\d.]+|g [\d.]+)$")
# The script this run stands in for: the per-family wrappers pass their name (runpy replaces argv[0]).
SCRIPT = str(globals().get("STANDS_IN_FOR", "train_network"))
(OPTIONS_FILE,) = (Path(__file__).resolve().parent.parent / "fixtures").glob("sd_scripts_*_options.json")
OPTIONS = json.loads(OPTIONS_FILE.read_text(encoding="utf-8"))
# networks/lora_flux.py (LORA_PREFIX_FLUX "lora_unet", DoubleStreamBlock / SingleStreamBlock modules) and
# networks/lora_sd3.py (LORA_PREFIX_SD3 "lora_unet", SingleDiTBlock modules of the joint blocks).
UNET_LORA_NAMES = {
    "networks.lora": ("lora_unet_down_blocks_0_attentions_0_proj_in",),
    "networks.lora_flux": ("lora_unet_double_blocks_0_img_attn_qkv", "lora_unet_single_blocks_0_linear1"),
    "networks.lora_sd3": (
        "lora_unet_joint_blocks_0_x_block_attn_qkv",
        "lora_unet_joint_blocks_0_context_block_attn_qkv",
    ),
}
TEXT_ENCODER_LORA_NAME = "lora_te1_text_model_encoder_layers_0_self_attn_q_proj"
# The component files each script loads: flux_train_network.py load_target_model reads all three;
# sd3_train_network.py falls back to the checkpoint for any it is not given.
REQUIRED_COMPONENTS = {"flux_train_network": ("ae", "clip_l", "t5xxl")}
COMPONENT_OPTIONS = ("ae", "clip_l", "clip_g", "t5xxl")


def parse_prompt_line(line: str) -> dict[str, str]:
    """sd-scripts' line_to_prompt_dict, strict: an unknown option is an error here."""
    prompt, *options = line.split(" --")
    parsed = {"prompt": prompt}
    for option in options:
        assert SAMPLE_OPTION.match(option), f"unknown sample option --{option}"
        parsed[option[0]] = option[2:]
    return parsed


def save_lora(path: Path, corrupt: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if corrupt:
        path.write_bytes(b"not a safetensors file")
        return
    names = list(UNET_LORA_NAMES[config["network_module"]])
    if not config.get("network_train_unet_only"):
        names.append(TEXT_ENCODER_LORA_NAME)
    tensors = {}
    for name in names:
        tensors |= {
            f"{name}.lora_down.weight": torch.zeros(4, 8),
            f"{name}.lora_up.weight": torch.zeros(8, 4),
            f"{name}.alpha": torch.tensor(2.0),
        }
    save_file(
        tensors, str(path), metadata={"ss_network_module": config["network_module"], "ss_network_dim": "4"}
    )


def check_options(config: dict, dataset: dict) -> None:
    """sd-scripts would ignore an unknown key silently; the stand-in fails on it."""
    unknown = set(config) - set(OPTIONS[SCRIPT])
    assert not unknown, f"{SCRIPT}.py has no option(s) {sorted(unknown)}"
    schema = OPTIONS["dataset_config"]
    assert set(dataset.get("general", {})) <= set(schema["general"]), "unknown [general] key"
    for section in dataset["datasets"]:
        assert set(section) - {"subsets"} <= set(schema["datasets"]), "unknown [[datasets]] key"
        for subset in section["subsets"]:
            assert set(subset) <= set(schema["subsets"]), "unknown [[datasets.subsets]] key"
    for option in REQUIRED_COMPONENTS.get(SCRIPT, ()):
        assert config.get(option), f"{SCRIPT}.py needs --{option}"
    for option in COMPONENT_OPTIONS:
        if option in config:
            assert Path(config[option]).is_file(), f"--{option} {config[option]} is not a file"


parser = argparse.ArgumentParser()
parser.add_argument("--config_file", required=True)
parser.add_argument("--dataset_config", required=True)
args = parser.parse_args()
config = toml.load(args.config_file)
dataset = toml.load(args.dataset_config)
mode = os.environ.get("FAKE_SD_SCRIPTS_MODE", "ok")
assert dataset["datasets"][0]["subsets"], "no subsets"
check_options(config, dataset)

print("prepare optimizer, data loader etc.")
print("caching latents.")
print("  total optimization steps / 学習ステップ数: 4", flush=True)
if mode == "replay":
    recording = Path(os.environ["FAKE_SD_SCRIPTS_RECORDING"]).read_text(encoding="utf-8")
    status_line, _, output = recording.partition("\n")
    print(output, end="", flush=True)
    sys.exit(int(status_line.removeprefix("# exit status ")))
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
    output_dir, output_name = Path(config["output_dir"]), config["output_name"]
    every = config.get("save_every_n_epochs")
    if every and epoch % every == 0 and epoch < 2:
        save_lora(output_dir / f"{output_name}-{epoch:06d}.safetensors", corrupt=mode == "corrupt_epoch")
    sample_every = config.get("sample_every_n_epochs")
    if config.get("sample_prompts") and sample_every and epoch % sample_every == 0:
        lines = Path(config["sample_prompts"]).read_text(encoding="utf-8").splitlines()
        for index, line in enumerate(lines):
            options = parse_prompt_line(line)
            stamp = time.strftime("%Y%m%d%H%M%S", time.localtime())
            seed = f"_{options['d']}" if "d" in options else ""
            target = output_dir / "sample" / f"{output_name}_e{epoch:06d}_{index:02d}_{stamp}{seed}.png"
            target.parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (int(options["w"]), int(options["h"])), (epoch * 60, index * 90, 0)).save(target)
print()
if mode in ("ok", "corrupt_epoch"):
    save_lora(Path(config["output_dir"]) / f"{config['output_name']}.safetensors")

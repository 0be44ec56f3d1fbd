"""``make demo``: the whole product on this machine in a few minutes, with tiny random models.

    start the local runtime -> build a tiny base checkpoint and a captioned Kohya dataset ->
    upload both with loractl -> train a LoRA (live progress bar) -> download it ->
    render one image without and one with the LoRA -> report the pixel difference -> stop.

Everything lands in ``demo-output/`` (override with ``--output-dir``).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import re
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from functions.domain.catalog import INSTANCE_TYPES, FmType, instance_fits
from functions.settings import DEFAULTS
from local_runtime.quiet import disable_library_progress_bars, silence_known_noise
from local_runtime.runtime import LocalRuntime, LocalRuntimeOptions
from local_runtime.serve import loractl_hint
from loractl.main import main as loractl

DEMO_CONCEPT = "tinydemo"
RENDER_SIZE = 128
RENDER_STEPS = 4


class DemoError(Exception):
    """A demo step failed; the message says which and why."""


def demo_instance_type(fm_type: FmType) -> str:
    """The cheapest of the deployment's default instance types the family fits (GPU and host
    memory): recorded for the plan and cost estimate; the job itself runs locally."""
    fitting = [
        INSTANCE_TYPES[name]
        for name in DEFAULTS.allowed_instance_types
        if instance_fits(INSTANCE_TYPES[name], fm_type)
    ]
    return min(fitting, key=lambda it: it.price_per_hour_usd).name


def demo_config(fm_type: FmType, steps: int) -> dict[str, Any]:
    """Kohya parameters small enough for CPU, with a learning rate that visibly moves the LoRA."""
    # FLUX.1 / SD 3.5: the tiny T5's short prompts; sd-scripts' 512 / 256 tokens would only cost
    # CPU time here.
    family = {"t5xxl_max_token_length": 16} if fm_type in FILE_LOADERS else {}
    return family | {
        "resolution": 256,
        "min_bucket_reso": 256,
        "max_bucket_reso": 512,
        "network_dim": 4,
        "network_alpha": 4,
        "learning_rate": 5e-3,
        "unet_lr": 5e-3,
        "text_encoder_lr": 1e-3,
        "max_train_steps": steps,
        "max_data_loader_n_workers": 0,
    }


def run_loractl(arguments: list[str], connection: list[str]) -> Any:
    """Run one loractl command in-process with ``--json``; returns its parsed output."""
    captured = io.StringIO()
    with contextlib.redirect_stdout(captured):
        status = loractl([*arguments, *connection, "--json"])
    if status != 0:
        raise DemoError(f"`loractl {' '.join(arguments)}` exited with {status}:\n{captured.getvalue()}")
    return json.loads(captured.getvalue())


def build_inputs(fm_type: FmType, folder: Path, steps: int) -> tuple[dict[str, Path], Path, Path]:
    """The files a user uploads for the family (``checkpoint`` plus FLUX.1's components), a
    dataset and a parameter file."""
    from training_container.testing.tiny_flow_models import save_tiny_model_files
    from training_container.testing.tiny_models import make_tiny_dataset

    files = save_tiny_model_files(fm_type, folder / "model")
    dataset = make_tiny_dataset(folder / "dataset", concept=DEMO_CONCEPT, repeats=2, n_images=4)
    config = folder / "lora.json"
    config.write_text(json.dumps(demo_config(fm_type, steps), indent=2), encoding="utf-8")
    return files, dataset, config


def _file_loaders() -> dict[FmType, Any]:
    from training_container.engines.families.flux1_files import load_flux_pipeline
    from training_container.engines.families.sd35_files import load_sd35_pipeline

    return {FmType.FLUX1: load_flux_pipeline, FmType.SD35: load_sd35_pipeline}


# The families uploaded as several files, loaded from them (the others from build_tiny_pipeline).
FILE_LOADERS = (FmType.FLUX1, FmType.SD35)


def _pipelines(fm_type: FmType, files: dict[str, Path], lora: Path, folder: Path) -> tuple[Any, Any]:
    """The base pipeline and the same with the LoRA, loaded as users load it: diffusers'
    ``load_lora_weights`` for SD 1.5 / SDXL; FLUX.1 / SD 3.5 merged into the uploaded file by
    sd-scripts' module names, as ComfyUI does (diffusers' loaders split FLUX.1 only at its real
    widths and read no lora_sd3 names)."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from functions.domain.families import ComponentRole
    from training_container.testing.tiny_flow_models import merge_kohya_lora_into_bfl
    from training_container.testing.tiny_models import build_tiny_pipeline

    if fm_type not in FILE_LOADERS:
        base, with_lora = build_tiny_pipeline(fm_type, seed=0), build_tiny_pipeline(fm_type, seed=0)
        with_lora.load_lora_weights(str(lora.parent), weight_name=lora.name)
        return base, with_lora
    load = _file_loaders()[fm_type]
    components = {ComponentRole(k): v for k, v in files.items() if k != "checkpoint"}
    merged = folder / f"{fm_type.value}-with-lora.safetensors"
    with safe_open(str(files["checkpoint"]), framework="pt") as handle:
        metadata = handle.metadata()
    weights = merge_kohya_lora_into_bfl(load_file(str(files["checkpoint"])), load_file(str(lora)))
    save_file(weights, str(merged), metadata)
    return load(files["checkpoint"], components, torch.float32), load(merged, components, torch.float32)


def render_with_and_without(
    fm_type: FmType, files: dict[str, Path], lora: Path, folder: Path
) -> tuple[Path, Path, float]:
    """Render the same prompt and seed twice (base, base + LoRA); returns the PNGs and the mean
    absolute pixel difference (0-255)."""
    import numpy as np
    import torch

    disable_library_progress_bars()
    base, with_lora_pipe = _pipelines(fm_type, files, lora, folder)
    extra = {"max_sequence_length": 16} if fm_type in FILE_LOADERS else {}

    def render(pipe: Any) -> Any:
        pipe.set_progress_bar_config(disable=True)
        generator = torch.Generator().manual_seed(1234)
        result = pipe(
            prompt=f"{DEMO_CONCEPT}, a circle, flat colours",
            num_inference_steps=RENDER_STEPS,
            height=RENDER_SIZE,
            width=RENDER_SIZE,
            generator=generator,
            guidance_scale=1.0,
            **extra,
        )
        return result.images[0]

    without = render(base)
    with_lora = render(with_lora_pipe)
    paths = folder / "without-lora.png", folder / "with-lora.png"
    without.save(paths[0])
    with_lora.save(paths[1])
    difference = np.abs(
        np.asarray(without, dtype=np.float32) - np.asarray(with_lora, dtype=np.float32)
    ).mean()
    return paths[0], paths[1], float(difference)


# One module name sd-scripts writes for each family's default targets (networks/lora.py,
# networks/lora_flux.py): the downloaded LoRA must hold it.
EXPECTED_KOHYA_MODULE = {
    FmType.SD15: "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q",
    FmType.SDXL: "lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q",
    FmType.FLUX1: "lora_unet_double_blocks_0_img_attn_qkv",
    FmType.SD35: "lora_unet_joint_blocks_0_x_block_attn_qkv",  # networks/lora_sd3.py
}


# Every module name sd-scripts' network writes for the family's default targets (no text encoder,
# no split qkv, no emb_dims): "lora_unet" + the Linear's path with dots as underscores
# (networks/lora_flux.py:712,826-827 and networks/lora_sd3.py:233,333-334). FLUX.1 targets the
# Linears of DoubleStreamBlock / SingleStreamBlock (lora_flux.py:709-710; library/flux_models.py:
# SelfAttention qkv/proj 612-614, Modulation lin 638, img/txt_mlp 0 and 2 661-675, linear1/linear2
# 783-785); SD 3.5 those of SingleDiTBlock, the joint blocks' context_block / x_block
# (lora_sd3.py:231; library/sd3_models.py: AttentionLinears qkv/proj 474-476, attn2 602, MLP
# fc1/fc2 or SwiGLU w1-w3 612-618, adaLN_modulation 630). SD 1.5 / SDXL keep the one-module check.
KOHYA_MODULE_PATTERNS = {
    FmType.FLUX1: re.compile(
        r"lora_unet_(double_blocks_\d+_(img|txt)_(attn_qkv|attn_proj|mod_lin|mlp_0|mlp_2)"
        r"|single_blocks_\d+_(linear1|linear2|modulation_lin))"
    ),
    FmType.SD35: re.compile(
        r"lora_unet_joint_blocks_\d+_(context_block|x_block)_"
        r"(attn_qkv|attn_proj|attn2_qkv|attn2_proj|mlp_fc1|mlp_fc2|mlp_w1|mlp_w2|mlp_w3|adaLN_modulation_1)"
    ),
}
# What sd-scripts saves per module: LoRAModule's lora_down / lora_up Linears and its alpha buffer
# (networks/lora_flux.py:78-101).
KOHYA_MODULE_TENSORS = {"lora_down.weight", "lora_up.weight", "alpha"}


def kohya_key_check(fm_type: FmType, lora: Path) -> str:
    """Whether the LoRA uses sd-scripts' names for the family; DemoError when it does not: a
    ComfyUI or sd-scripts user loads the file by these names, so one stray name is a failure."""
    from safetensors import safe_open

    with safe_open(str(lora), framework="pt") as handle:
        keys = list(handle.keys())
    tensors: dict[str, set[str]] = {}
    for key in keys:
        module, _, tensor = key.partition(".")
        tensors.setdefault(module, set()).add(tensor)
    expected = EXPECTED_KOHYA_MODULE.get(fm_type)
    if expected is None or expected not in tensors:
        raise DemoError(f"the LoRA lacks sd-scripts' module {expected} ({len(tensors)} modules)")
    pattern = KOHYA_MODULE_PATTERNS.get(fm_type)
    foreign = sorted(m for m in tensors if pattern is not None and not pattern.fullmatch(m))
    if foreign:
        raise DemoError(f"modules sd-scripts does not write for {fm_type.value}: {', '.join(foreign[:5])}")
    incomplete = sorted(m for m, names in tensors.items() if names != KOHYA_MODULE_TENSORS)
    if incomplete:
        raise DemoError(
            f"modules without exactly {', '.join(sorted(KOHYA_MODULE_TENSORS))}: {', '.join(incomplete[:5])}"
        )
    return f"{len(tensors)} modules named as sd-scripts names them (e.g. {expected})"


def _rounded(value: Any, digits: int = 4) -> str:
    """A float for people (0.8058637380599976 -> 0.8059); anything else as it is."""
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def run_demo(fm_type: FmType, output_dir: Path, steps: int) -> int:
    shutil.rmtree(output_dir, ignore_errors=True)
    inputs, results = output_dir / "inputs", output_dir / "results"
    results.mkdir(parents=True)
    started = time.monotonic()
    print(
        f"[demo] building a tiny {fm_type.value} checkpoint and a {DEMO_CONCEPT!r} dataset in {inputs}",
        flush=True,
    )
    files, dataset, config = build_inputs(fm_type, inputs, steps)
    instance_type = demo_instance_type(fm_type)

    runtime = LocalRuntime(
        LocalRuntimeOptions(data_dir=output_dir / "local-data", api_port=0, write_cli_config=False)
    )
    info = runtime.start()
    print(f"[demo] local runtime up: API {info.api_url} (state in {info.data_dir})", flush=True)
    connection = ["--endpoint", info.api_url, "--token", info.tokens["local"]]
    try:
        model = run_loractl(
            ["models", "upload", str(files["checkpoint"]), "--fm-type", fm_type.value, "--name", "tiny base"],
            connection,
        )
        print(f"[demo] base model {model['id']} is {model.get('status')}", flush=True)
        components = []
        for role, path in files.items():
            if role == "checkpoint":
                continue
            upload = ["models", "upload", str(path), "--fm-type", fm_type.value, "--component", role]
            component = run_loractl([*upload, "--name", f"tiny {role}"], connection)
            print(f"[demo] {role} component {component['id']} is {component.get('status')}", flush=True)
            components += ["--component", f"{role}={component['id']}"]
        dataset_record = run_loractl(
            ["datasets", "upload", str(dataset), "--name", "tiny dataset"], connection
        )
        print(f"[demo] dataset {dataset_record['id']} is {dataset_record.get('status')}", flush=True)
        job = run_loractl(
            [
                "trainings", "create", "--model", str(model["id"]), "--dataset", str(dataset_record["id"]),
                "--fm-type", fm_type.value, "--instance-type", instance_type, "--config", str(config),
                "--name", "demo", "--no-spot", "--wait", *components,
            ],
            connection,
        )  # fmt: skip
        output = job.get("output") or {}
        print(
            f"[demo] training {job['id']} ended {job['status']}: {output.get('steps')} steps, "
            f"final loss {_rounded(output.get('final_loss'))}, "
            f"{_rounded(output.get('training_seconds'), 1)}s of training "
            f"(on AWS: an estimated ${job['plan']['estimated_cost_usd']:.2f} on {instance_type})",
            flush=True,
        )
        downloaded = run_loractl(["trainings", "download", str(job["id"]), str(results)], connection)
    finally:
        runtime.stop()
    lora = Path(downloaded["path"])
    without, with_lora, difference = render_with_and_without(fm_type, files, lora, results)
    print(f"[demo] LoRA keys: {kohya_key_check(fm_type, lora)}", flush=True)
    print(
        "\n".join(
            [
                "",
                f"[demo] done in {time.monotonic() - started:.0f}s",
                f"  LoRA (Kohya format)  {lora} ({lora.stat().st_size} bytes)",
                f"  without the LoRA     {without}",
                f"  with the LoRA        {with_lora}",
                f"  mean |pixel diff|    {difference:.2f} / 255",
                f"  runtime state        {info.data_dir} (job logs under sagemaker/work/)",
                "",
                "Next: `make serve` keeps the local runtime running (it writes loractl's 'local' profile);",
                "then, in another terminal:",
                loractl_hint(),
            ]
        ),
        flush=True,
    )
    if difference <= 0.0:
        raise DemoError("the LoRA did not change the rendered image")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local_runtime.demo", description=__doc__)
    parser.add_argument("--fm-type", choices=[f.value for f in FmType], default=FmType.SD15.value)
    parser.add_argument("--output-dir", type=Path, default=Path("demo-output"))
    parser.add_argument("--steps", type=int, default=30, help="training steps (default 30)")
    args = parser.parse_args(argv)
    silence_known_noise()
    try:
        return run_demo(FmType(args.fm_type), args.output_dir.resolve(), args.steps)
    except DemoError as error:
        print(f"[demo] FAILED: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

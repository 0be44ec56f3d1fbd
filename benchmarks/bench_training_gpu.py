"""GPU training throughput of full-size SD 1.5 (512 px) and SDXL (1024 px) UNets with LoRA.

Random weights, real architectures (diffusers' UNet2DConditionModel and AutoencoderKL with the
published SD 1.5 / SDXL shapes), the same LoRA targets as the service's diffusers engine (PEFT),
the UNet trained as the service's defaults do (SDXL: UNet only with cached text-encoder
outputs; text conditioning here is random embeddings of the right shapes for both families).

For each family it prints images/s, peak GPU memory and model FLOPs utilisation (the UNet's
forward + backward FLOPs per step, counted with torch's FlopCounterMode, divided by the step
time and the GPU's dense bf16/fp16 peak), first at the service's default settings across batch
sizes (the best batch is the fastest that fits), then varying one setting at a time at batch 1
and at the best batch: cached latents (VAE encode per step when off), gradient checkpointing,
optimizer (AdamW, fused AdamW, bitsandbytes AdamW8bit when installed).

    python benchmarks/bench_training_gpu.py [--families sd15,sdxl] [--batches 1,2,4,8] [--steps 10]
    python benchmarks/bench_training_gpu.py --tiny --device cpu --steps 2   # smoke run, any machine
"""

from __future__ import annotations

import sys
from pathlib import Path as _Path

sys.path.insert(0, str(_Path(__file__).resolve().parents[1]))

import argparse
import json
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
from peft import LoraConfig, inject_adapter_in_model
from torch.utils.flop_counter import FlopCounterMode

from functions.domain.catalog import FmType
from functions.domain.kohya_params import DEFAULTS
from training_container.engines.families.stable_diffusion import UNET_TARGET_MODULES

# Dense (no sparsity) tensor-core peaks in TFLOP/s for bf16/fp16, from NVIDIA's data sheets.
PEAK_TFLOPS = {"H100": 989.4, "H200": 989.4, "A100": 312.0, "L40S": 362.1, "L4": 121.0}
SD15_UNET: dict[str, Any] = {
    "sample_size": 64,
    "cross_attention_dim": 768,
    "attention_head_dim": 8,
    "block_out_channels": (320, 640, 1280, 1280),
    "layers_per_block": 2,
}
SDXL_UNET: dict[str, Any] = {
    "sample_size": 128,
    "block_out_channels": (320, 640, 1280),
    "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    "up_block_types": ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    "transformer_layers_per_block": (1, 2, 10),
    "attention_head_dim": (5, 10, 20),
    "cross_attention_dim": 2048,
    "use_linear_projection": True,
    "addition_embed_type": "text_time",
    "addition_time_embed_dim": 256,
    "projection_class_embeddings_input_dim": 2816,
    "layers_per_block": 2,
}
VAE: dict[str, Any] = {
    "block_out_channels": (128, 256, 512, 512),
    "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4,
    "latent_channels": 4,
    "layers_per_block": 2,
}
TOKENS = 77


@dataclass(frozen=True)
class Settings:
    batch: int
    cache_latents: bool
    gradient_checkpointing: bool
    optimizer: str  # "AdamW" | "AdamW-fused" | "AdamW8bit"


@dataclass
class Measurement:
    family: str
    settings: Settings
    images_per_s: float
    seconds_per_step: float
    peak_memory_gib: float
    tflop_per_step: float
    mfu: float | None


def default_settings(fm_type: FmType) -> Settings:
    """The service's recommended configuration for the family (functions/domain/kohya_params.py)."""
    defaults = DEFAULTS[fm_type]
    return Settings(
        batch=int(str(defaults["train_batch_size"])),
        cache_latents=bool(defaults["cache_latents"]),
        gradient_checkpointing=bool(defaults["gradient_checkpointing"]),
        optimizer=str(defaults["optimizer_type"]),
    )


def build_models(fm_type: FmType, tiny: bool) -> tuple[UNet2DConditionModel, AutoencoderKL, int]:
    """(UNet, VAE, image size in pixels) at full size, or the tests' tiny models."""
    if tiny:
        from training_container.testing.tiny_models import TINY_RESOLUTION, build_tiny_pipeline

        pipe = build_tiny_pipeline(fm_type)
        return pipe.unet, pipe.vae, TINY_RESOLUTION
    config = SD15_UNET if fm_type is FmType.SD15 else SDXL_UNET
    return UNet2DConditionModel(**config), AutoencoderKL(**VAE), config["sample_size"] * 8


def conditioning(
    unet: UNet2DConditionModel, batch: int, device: torch.device, dtype: torch.dtype
) -> dict[str, Any]:
    """Random text conditioning of the UNet's shapes (as cached text-encoder outputs would be)."""
    width = unet.config.cross_attention_dim
    kwargs: dict[str, Any] = {
        "encoder_hidden_states": torch.randn(batch, TOKENS, width, device=device, dtype=dtype)
    }
    if unet.config.addition_embed_type == "text_time":
        pooled = unet.config.projection_class_embeddings_input_dim - 6 * unet.config.addition_time_embed_dim
        kwargs["added_cond_kwargs"] = {
            "text_embeds": torch.randn(batch, pooled, device=device, dtype=dtype),
            "time_ids": torch.randn(batch, 6, device=device, dtype=dtype),
        }
    return kwargs


def make_optimizer(name: str, parameters: list[torch.nn.Parameter]) -> torch.optim.Optimizer | None:
    if name == "AdamW8bit":
        try:
            import bitsandbytes as bnb  # type: ignore[import-not-found]
        except ImportError:
            return None
        optimizer: torch.optim.Optimizer = bnb.optim.AdamW8bit(parameters, lr=1e-4)
        return optimizer
    return torch.optim.AdamW(parameters, lr=1e-4, fused=name == "AdamW-fused")


@contextmanager
def peak_memory(device: torch.device) -> Iterator[Callable[[], float]]:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        yield lambda: torch.cuda.max_memory_allocated(device) / 1024**3
    else:
        yield lambda: float("nan")


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(
    fm_type: FmType, settings: Settings, args: argparse.Namespace, device: torch.device
) -> Measurement | str:
    """One configuration: warm-up steps, then timed steps. Returns a reason string when skipped."""
    dtype = torch.float32 if device.type == "cpu" else torch.bfloat16
    unet, vae, size = build_models(fm_type, args.tiny)
    unet.requires_grad_(False)
    vae.requires_grad_(False)
    inject_adapter_in_model(LoraConfig(r=32, lora_alpha=16, target_modules=list(UNET_TARGET_MODULES)), unet)
    unet.to(device, dtype=dtype)
    vae.to(device, dtype=dtype)
    lora = [p for n, p in unet.named_parameters() if "lora_" in n]
    for parameter in lora:
        parameter.data = parameter.data.float()  # trainable weights in fp32, frozen base in bf16
        parameter.requires_grad_(True)
    if settings.gradient_checkpointing:
        unet.enable_gradient_checkpointing()
    unet.train()
    optimizer = make_optimizer(settings.optimizer, lora)
    if optimizer is None:
        return f"{settings.optimizer} needs bitsandbytes, which is not installed"
    scheduler = DDPMScheduler(num_train_timesteps=1000)
    latent_size = size // 8
    pixels = torch.randn(settings.batch, 3, size, size, device=device, dtype=dtype)
    cached = torch.randn(settings.batch, 4, latent_size, latent_size, device=device, dtype=dtype)
    cond = conditioning(unet, settings.batch, device, dtype)

    def step() -> None:
        with torch.no_grad():
            latents = cached if settings.cache_latents else vae.encode(pixels).latent_dist.sample() * 0.18215
        noise = torch.randn_like(latents)
        timesteps = torch.randint(0, 1000, (settings.batch,), device=device)
        noisy = scheduler.add_noise(latents, noise, timesteps)
        with torch.autocast(device.type, dtype=dtype, enabled=device.type == "cuda"):
            prediction = unet(noisy, timesteps, **cond).sample
        loss = torch.nn.functional.mse_loss(prediction.float(), noise.float())
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    try:
        with peak_memory(device) as peak:
            flop_counter = FlopCounterMode(display=False)
            with flop_counter:
                step()
            for _ in range(args.warmup):
                step()
            synchronize(device)
            started = time.perf_counter()
            for _ in range(args.steps):
                step()
            synchronize(device)
            per_step = (time.perf_counter() - started) / args.steps
            peak_gib = peak()
    except torch.OutOfMemoryError:
        return "out of memory"
    flops = flop_counter.get_total_flops()
    peak_tflops = args.peak_tflops or gpu_peak_tflops(device)
    return Measurement(
        family=fm_type.value,
        settings=settings,
        images_per_s=round(settings.batch / per_step, 2),
        seconds_per_step=round(per_step, 4),
        peak_memory_gib=round(peak_gib, 2),
        tflop_per_step=round(flops / 1e12, 6),
        mfu=round(flops / per_step / (peak_tflops * 1e12), 3) if peak_tflops else None,
    )


def gpu_peak_tflops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for model, peak in PEAK_TFLOPS.items() if model in name.split()), None)


def variations(best: Settings) -> list[Settings]:
    """One setting changed at a time from the defaults."""
    optimizers = ["AdamW", "AdamW-fused", "AdamW8bit"]
    return [
        replace(best, cache_latents=not best.cache_latents),
        replace(best, gradient_checkpointing=not best.gradient_checkpointing),
        *(replace(best, optimizer=o) for o in optimizers if o != best.optimizer),
    ]


def report(result: Measurement | str, fm_type: FmType, settings: Settings) -> Measurement | None:
    latents = "cached" if settings.cache_latents else "encoded"
    checkpointing = "on " if settings.gradient_checkpointing else "off"
    label = (
        f"{fm_type.value:5} batch {settings.batch:2} latents {latents:7} ckpt {checkpointing} "
        f"{settings.optimizer:11}"
    )
    if isinstance(result, str):
        print(f"{label}  skipped: {result}", flush=True)
        return None
    mfu = f"{result.mfu:.1%}" if result.mfu is not None else "n/a"
    memory = "n/a" if math.isnan(result.peak_memory_gib) else f"{result.peak_memory_gib:6.2f} GiB"
    print(
        f"{label}  {result.images_per_s:7.2f} img/s  {result.seconds_per_step * 1000:8.1f} ms/step  "
        f"{memory:>10}  {result.tflop_per_step:8.3f} TFLOP/step  MFU {mfu}",
        flush=True,
    )
    return result


def bitsandbytes_available() -> bool:
    try:
        import bitsandbytes  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        return False
    return True


def run_family(fm_type: FmType, args: argparse.Namespace, device: torch.device) -> list[Measurement]:
    defaults = default_settings(fm_type)
    if defaults.optimizer == "AdamW8bit" and not bitsandbytes_available():
        print(
            f"{fm_type.value}: bitsandbytes is not installed; the batch sweep uses AdamW instead of AdamW8bit"
        )
        defaults = replace(defaults, optimizer="AdamW")
    results: list[Measurement] = []
    for batch in (int(b) for b in args.batches.split(",")):
        settings = replace(defaults, batch=batch)
        outcome = measure(fm_type, settings, args, device)
        measured = report(outcome, fm_type, settings)
        if measured is None:
            break  # out of memory: a larger batch will not fit either
        results.append(measured)
    if not results:
        return results
    best = max(results, key=lambda m: m.images_per_s).settings
    for base in dict.fromkeys([replace(defaults, batch=1), best]):  # ordered, without duplicates
        for settings in variations(base):
            measured = report(measure(fm_type, settings, args, device), fm_type, settings)
            if measured is not None:
                results.append(measured)
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", default="sd15,sdxl")
    parser.add_argument("--batches", default="1,2,4,8")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tiny", action="store_true", help="the tests' tiny models (a smoke run)")
    parser.add_argument("--peak-tflops", type=float, help="the GPU's dense bf16 peak (default: by name)")
    parser.add_argument("--json", help="also write every measurement to this file")
    args = parser.parse_args()
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"torch {torch.__version__} on {name}; {args.steps} timed steps after {args.warmup} warm-up")
    results = [m for family in args.families.split(",") for m in run_family(FmType(family), args, device)]
    if args.json:
        _Path(args.json).write_text(json.dumps([asdict(m) for m in results], indent=2))


if __name__ == "__main__":
    main()

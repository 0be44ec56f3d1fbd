"""The portable LoRA trainer: diffusers + PEFT, CPU or GPU, PyPI packages only.

Reads top to bottom like diffusers' ``train_text_to_image_lora.py``: load the base model, attach
LoRA adapters, prepare data (buckets, cached latents), loop (noise, predict, loss, step), save
in the Kohya format. Nothing here depends on the family: what differs between families (the
networks trained, LoRA targets, prompt encoding, noise and target, extra conditioning, Kohya key
names, sampling) is asked of the family's adapter (``training_container.engines.families``).

It honours the same Kohya parameters as sd-scripts where it can; the ones it cannot apply are
listed in the LoRA's metadata (``lora_on_aws.ignored_parameters``) instead of being silently
dropped. Stop requests (SIGTERM) save a resumable state into the checkpoints folder; a restarted
job continues from the saved step.
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import json
import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import torch
import torch.nn.functional as F  # noqa: N812 - the conventional alias
from diffusers.optimization import get_scheduler
from peft import LoraConfig, inject_adapter_in_model
from safetensors.torch import save_file

from functions.domain.epoch_outputs import (
    DEFAULT_CFG_SCALE,
    DEFAULT_SAMPLE_STEPS,
    epoch_lora_filename,
    sample_filename,
    sample_size,
    saved_epochs,
)
from functions.domain.families import FAMILIES
from functions.domain.kohya_params import DIFFUSERS_ENGINE_PARAMETERS, ParamValue
from functions.domain.training_contract import Engine, TrainingPhase
from training_container.engines import kohya_lora_format as kohya
from training_container.engines.base import SAMPLE_SUBFOLDER, EngineRequest, EngineResult
from training_container.engines.engine_config import EngineConfig
from training_container.engines.families import adapter_for
from training_container.engines.families.base import FamilyAdapter, PromptEmbeddings
from training_container.engines.training_data import (
    BucketSettings,
    Sample,
    build_samples,
    epoch_batches,
    load_image_tensor,
    parse_resolution,
    repeat_counts,
    transform_caption,
)

logger = logging.getLogger(__name__)

STATE_FOLDER = "diffusers_state"
STATE_FILE = "state.pt"
STATE_SAVE_INTERVAL_SECONDS = 600.0
_SAVE_DTYPES = {"float": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class Precision:
    device: torch.device
    autocast_dtype: torch.dtype | None  # None: plain fp32
    label: str  # recorded as ss_mixed_precision


@dataclass(frozen=True)
class Schedule:
    batches_per_epoch: int
    steps_per_epoch: int
    epochs: int
    max_steps: int


@dataclass
class TrainingState:
    """Where a run is; saved on stop requests so a restarted job continues."""

    global_step: int = 0
    epoch: int = 0
    next_batch: int = 0
    last_loss: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def choose_precision(settings: EngineConfig) -> Precision:
    """bf16 autocast on GPUs that support it (fp16 otherwise); fp32 on CPUs, where autocast is slow."""
    if not torch.cuda.is_available():
        return Precision(torch.device("cpu"), None, "no")
    if settings.mixed_precision == "no":
        return Precision(torch.device("cuda"), None, "no")
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return Precision(torch.device("cuda"), dtype, "bf16" if dtype == torch.bfloat16 else "fp16")


def plan_schedule(settings: EngineConfig, batches_per_epoch: int) -> Schedule:
    """sd-scripts' arithmetic: epochs override steps; an epoch is ceil(batches / accumulation) steps."""
    steps_per_epoch = max(1, math.ceil(batches_per_epoch / settings.gradient_accumulation_steps))
    if settings.max_train_epochs:
        epochs = settings.max_train_epochs
        return Schedule(batches_per_epoch, steps_per_epoch, epochs, epochs * steps_per_epoch)
    max_steps = settings.max_train_steps
    return Schedule(batches_per_epoch, steps_per_epoch, math.ceil(max_steps / steps_per_epoch), max_steps)


def ignored_parameters(config: dict[str, ParamValue]) -> list[str]:
    """Also shown before the job runs: functions.domain.kohya_params.engine_warnings."""
    return sorted(key for key in config if key not in DIFFUSERS_ENGINE_PARAMETERS)


def _parse_kv_args(items: tuple[str, ...] | None) -> dict[str, Any]:
    """``["weight_decay=0.01", "betas=0.9,0.99"]`` -> kwargs; values were validated as plain literals."""
    parsed: dict[str, Any] = {}
    for item in items or ():
        key, _, raw = item.partition("=")
        try:
            parsed[key] = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            parsed[key] = raw
    return parsed


def build_optimizer(
    groups: list[dict[str, Any]], settings: EngineConfig, device: torch.device
) -> tuple[torch.optim.Optimizer, str, str | None]:
    """The requested optimizer, or torch AdamW with the reason when it cannot run here."""
    requested = settings.optimizer_type
    kwargs = _parse_kv_args(settings.optimizer_args)
    optimizer_class: Any = torch.optim.AdamW
    fallback: str | None = None
    if requested in ("AdamW8bit", "PagedAdamW8bit", "Lion8bit"):
        try:
            import bitsandbytes as bnb

            if device.type != "cuda":
                raise ImportError("8-bit optimizers need CUDA")
            optimizer_class = getattr(bnb.optim, requested)
        except (ImportError, AttributeError) as error:
            fallback = f"{requested} unavailable ({error}); used torch AdamW"
    elif requested == "SGDNesterov":
        optimizer_class = torch.optim.SGD
        kwargs = {"momentum": 0.9, **kwargs, "nesterov": True}
    elif requested == "Adafactor":
        from transformers.optimization import Adafactor

        optimizer_class = Adafactor
        kwargs = {"relative_step": False, "scale_parameter": False, "warmup_init": False, **kwargs}
    elif requested != "AdamW":
        fallback = f"{requested} is not available in the diffusers engine; used torch AdamW"
    if fallback:
        optimizer_class = torch.optim.AdamW
    accepted = inspect.signature(optimizer_class).parameters
    usable = {k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items() if k in accepted}
    return optimizer_class(groups, **usable), optimizer_class.__name__, fallback


class DiffusersTrainer:
    """One training run; each method is one stage of the loop."""

    def __init__(self, request: EngineRequest) -> None:
        self.request = request
        self.config = cast(dict[str, Any], request.config)  # validated by kohya_params
        self.fm_type = request.fm_type
        self.spec = FAMILIES[request.fm_type]
        self.adapter_class = adapter_for(self.spec)
        self.settings = EngineConfig.from_parameters(request.config)
        self.precision = choose_precision(self.settings)
        self.seed = self.settings.seed_for(request.job_id)
        # sd-scripts' parameter names say "unet" for the denoiser of any family
        self.train_denoiser = not self.settings.network_train_text_encoder_only
        te_lr = self.settings.text_encoder_learning_rate
        self.train_text = not self.settings.network_train_unet_only and te_lr > 0
        self.started_at = datetime.now(UTC)
        self.state_path = request.checkpoints_dir / STATE_FOLDER / STATE_FILE
        self.latent_cache: dict[tuple[int, bool], torch.Tensor] = {}
        self.text_cache: dict[str, PromptEmbeddings] = {}  # one row per caption
        self.caption_rng = random.Random(self.seed)

    # --- load
    def load(self) -> None:
        torch.manual_seed(self.seed)
        weight_dtype = self.precision.autocast_dtype or torch.float32
        # The adapter refuses, before any step, a model whose training target it cannot compute.
        self.family: FamilyAdapter = self.adapter_class.load(
            self.request.model_path, weight_dtype, self.request.component_paths
        )
        self.family.configure(self.request.config)
        self.family.pipe.to(self.precision.device)
        if self.settings.no_half_vae or self.precision.autocast_dtype is None:
            self.family.vae.to(torch.float32)
        for module in [self.family.denoiser, self.family.vae, *self.family.text_encoders]:
            module.requires_grad_(False)
            module.eval()
        self._attach_lora()

    def _lora_config(self, targets: tuple[str, ...]) -> LoraConfig:
        return LoraConfig(
            r=self.settings.network_dim,
            # Kohya alphas may be fractional; PEFT computes alpha / r with any number.
            lora_alpha=cast(int, self.settings.network_alpha),
            lora_dropout=self.settings.network_dropout or 0.0,
            init_lora_weights="gaussian",
            target_modules=list(targets),
        )

    @staticmethod
    def _inject_lora(
        model: torch.nn.Module, config: LoraConfig, share_parts: Callable[[], None] | None = None
    ) -> list[torch.nn.Parameter]:
        """PEFT's model-agnostic injection (no transformers/diffusers version coupling), then the
        family's sharing of fused layers' parts (before the parameters are listed, once each)."""
        inject_adapter_in_model(config, model)
        if share_parts is not None:
            share_parts()
        trainable = []
        for name, parameter in model.named_parameters():
            parameter.requires_grad_("lora_" in name)
            if parameter.requires_grad:
                trainable.append(parameter)
        return trainable

    def _attach_lora(self) -> None:
        family = self.family
        self.denoiser_params: list[torch.nn.Parameter] = []
        self.text_params: list[torch.nn.Parameter] = []
        if self.train_denoiser:
            denoiser: Any = family.denoiser
            self.denoiser_params = self._inject_lora(
                denoiser,
                self._lora_config(tuple(family.denoiser_lora_target_modules())),
                family.share_denoiser_lora_parts,
            )
            denoiser.train()
            if self.settings.gradient_checkpointing:
                denoiser.enable_gradient_checkpointing()
        if self.train_text:
            for encoder in cast(list[Any], family.text_encoders):
                self.text_params += self._inject_lora(
                    encoder, self._lora_config(family.text_encoder_lora_targets)
                )
                encoder.train()
                if self.settings.gradient_checkpointing:
                    enable = getattr(encoder, "activation_checkpointing_enable", None)
                    (enable or encoder.gradient_checkpointing_enable)()
        for parameter in self.denoiser_params + self.text_params:
            parameter.data = parameter.data.float()  # LoRA weights train in fp32 under autocast

    # --- data
    def prepare_data(self) -> None:
        settings = self.settings
        self.bucket_settings = BucketSettings(
            resolution=parse_resolution(settings.resolution_or_native(self.fm_type)),
            enabled=settings.enable_bucket,
            min_reso=settings.min_bucket_reso,
            max_reso=settings.max_bucket_reso,
            step=settings.bucket_reso_steps,
            no_upscale=settings.bucket_no_upscale,
        )
        self.samples = build_samples(self.request.dataset, self.bucket_settings)
        self.repeats = repeat_counts(self.request.dataset)
        self.batch_size = settings.train_batch_size
        first_epoch = epoch_batches(self.samples, self.repeats, self.batch_size, self.seed, 0)
        self.schedule = plan_schedule(settings, len(first_epoch))
        if settings.cache_latents:
            self._cache_latents()

    def _encode_latents(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.family.encode_latents(pixels, self.precision.device)

    def _cache_latents(self) -> None:
        self.request.progress.update(phase=TrainingPhase.CACHING, force=True)
        flips = (False, True) if self.settings.flip_aug else (False,)
        for sample in self.samples:
            for flip in flips:
                pixels = load_image_tensor(sample.image.path, sample.bucket, flip=flip, random_crop=False)
                self.latent_cache[(sample.index, flip)] = self._encode_latents(pixels[None])[0].cpu()

    def _batch_latents(self, batch: list[Sample]) -> torch.Tensor:
        flip_aug = self.settings.flip_aug
        flips = [flip_aug and random.random() < 0.5 for _ in batch]
        if self.latent_cache:
            stacked = torch.stack(
                [self.latent_cache[(s.index, f)] for s, f in zip(batch, flips, strict=True)]
            )
            return stacked.to(self.precision.device)
        random_crop = self.settings.random_crop
        pixels = torch.stack(
            [
                load_image_tensor(s.image.path, s.bucket, flip=f, random_crop=random_crop)
                for s, f in zip(batch, flips, strict=True)
            ]
        )
        return self._encode_latents(pixels)

    def _captions(self, batch: list[Sample]) -> list[str]:
        return [
            transform_caption(
                sample.image.caption,
                self.caption_rng,
                shuffle=self.settings.shuffle_caption,
                keep_tokens=self.settings.keep_tokens,
                dropout_rate=self.settings.caption_dropout_rate,
            )
            for sample in batch
        ]

    def _prompt_embeddings(self, captions: list[str]) -> PromptEmbeddings:
        """Encoded captions; cached per caption while the text encoders are frozen."""
        layer_from_last = self.settings.layer_from_last
        device = self.precision.device
        if self.train_text:
            return self.family.encode_prompts(captions, layer_from_last, device)
        missing = [c for c in dict.fromkeys(captions) if c not in self.text_cache]
        if missing:
            with torch.no_grad():
                encoded = self.family.encode_prompts(missing, layer_from_last, device)
            for index, caption in enumerate(missing):
                self.text_cache[caption] = {name: rows[index] for name, rows in encoded.items()}
        names = self.text_cache[captions[0]]
        return {name: torch.stack([self.text_cache[c][name] for c in captions]) for name in names}

    # --- loop
    def _loss(self, batch: list[Sample]) -> torch.Tensor:
        latents = self._batch_latents(batch)
        noisy = self.family.noisy_input(latents, self.settings.noise_offset or 0.0)
        prompts = self._prompt_embeddings(self._captions(batch))
        prediction = self.family.predict(noisy, self.family.conditioning(prompts, batch[0].bucket))
        per_sample = F.mse_loss(prediction, noisy.target.float(), reduction="none")
        per_sample = per_sample.mean(dim=tuple(range(1, per_sample.ndim)))
        weights = self.family.loss_weights(noisy, self.settings.min_snr_gamma)
        if weights is not None:
            per_sample = per_sample * weights
        return per_sample.mean()

    def build_optimization(self) -> None:
        settings = self.settings
        groups = []
        if self.denoiser_params:
            groups.append({"params": self.denoiser_params, "lr": settings.unet_learning_rate})
        if self.text_params:
            groups.append({"params": self.text_params, "lr": settings.text_encoder_learning_rate})
        if not groups:
            raise ValueError("nothing to train: both the denoiser and the text encoders are frozen")
        self.optimizer, self.optimizer_name, self.optimizer_fallback = build_optimizer(
            groups, settings, self.precision.device
        )
        name = settings.lr_scheduler
        self.lr_scheduler = get_scheduler(
            "constant" if name == "adafactor" else name,
            self.optimizer,
            num_warmup_steps=settings.lr_warmup_steps,
            num_training_steps=self.schedule.max_steps,
            num_cycles=settings.lr_scheduler_num_cycles,
            power=settings.lr_scheduler_power,
        )

    def _fingerprint(self) -> str:
        description = json.dumps(
            [self.fm_type.value, self.config, [str(s.image.path.name) for s in self.samples]],
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(description.encode()).hexdigest()

    def _trainable_state(self) -> dict[str, dict[str, torch.Tensor]]:
        models = self.family.model_parts()
        return {
            key: {n: p.detach().cpu() for n, p in model.named_parameters() if p.requires_grad}
            for key, model in models.items()
        }

    def save_state(self, state: TrainingState) -> None:
        """Everything needed to continue: LoRA weights, optimizer, LR schedule, data position, RNG."""
        payload = {
            "fingerprint": self._fingerprint(),
            "training": state.__dict__,
            "weights": self._trainable_state(),
            "optimizer": self.optimizer.state_dict(),
            "lr_scheduler": self.lr_scheduler.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "python_rng": random.getstate(),
            "caption_rng": self.caption_rng.getstate(),
        }
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.state_path.with_suffix(".tmp")
        torch.save(payload, temporary)
        temporary.replace(self.state_path)
        logger.info("saved training state at step %d to %s", state.global_step, self.state_path)

    def load_state(self) -> TrainingState:
        if not self.state_path.is_file():
            return TrainingState()
        payload = torch.load(self.state_path, map_location="cpu", weights_only=False)
        if payload.get("fingerprint") != self._fingerprint():
            logger.warning("ignoring saved state in %s: it belongs to another job", self.state_path)
            return TrainingState()
        models = self.family.model_parts()
        for key, weights in payload["weights"].items():
            if weights:
                result = models[key].load_state_dict(weights, strict=False)
                if result.unexpected_keys:
                    raise RuntimeError(f"saved state does not match the model: {result.unexpected_keys[:3]}")
        self.optimizer.load_state_dict(payload["optimizer"])
        self.lr_scheduler.load_state_dict(payload["lr_scheduler"])
        torch.set_rng_state(payload["torch_rng"])
        random.setstate(payload["python_rng"])
        self.caption_rng.setstate(payload["caption_rng"])
        state = TrainingState(**payload["training"])
        logger.info("resuming from step %d (epoch %d)", state.global_step, state.epoch + 1)
        return state

    def train(self, state: TrainingState) -> TrainingState:
        """The loop. Returns when done, or early (state saved) when a stop was requested."""
        request, schedule = self.request, self.schedule
        accumulation = self.settings.gradient_accumulation_steps
        max_grad_norm = self.settings.max_grad_norm
        params = self.denoiser_params + self.text_params
        started, last_state_save = time.monotonic(), time.monotonic()
        steps_at_start = state.global_step
        request.progress.update(
            phase=TrainingPhase.TRAINING,
            step=state.global_step,
            total_steps=schedule.max_steps,
            epoch=state.epoch + 1,
            total_epochs=schedule.epochs,
            force=True,
        )
        while state.epoch < schedule.epochs and state.global_step < schedule.max_steps:
            batches = epoch_batches(self.samples, self.repeats, self.batch_size, self.seed, state.epoch)
            while state.next_batch < len(batches) and state.global_step < schedule.max_steps:
                group = batches[state.next_batch : state.next_batch + accumulation]
                losses = []
                for batch in group:
                    with torch.autocast(
                        self.precision.device.type,
                        dtype=self.precision.autocast_dtype or torch.float32,
                        enabled=self.precision.autocast_dtype is not None,
                    ):
                        loss = self._loss(batch)
                    (loss / len(group)).backward()
                    losses.append(float(loss.detach()))
                if max_grad_norm > 0:
                    torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
                self.optimizer.step()
                self.lr_scheduler.step()
                self.optimizer.zero_grad(set_to_none=True)
                state.next_batch += len(group)
                state.global_step += 1
                state.last_loss = sum(losses) / len(losses)
                if not math.isfinite(state.last_loss):
                    raise FloatingPointError(f"loss became {state.last_loss} at step {state.global_step}")
                self._report(state, started, steps_at_start)
                if request.stop_requested.is_set():
                    self.save_state(state)
                    return state
                if time.monotonic() - last_state_save > STATE_SAVE_INTERVAL_SECONDS:
                    self.save_state(state)
                    last_state_save = time.monotonic()
            if state.next_batch >= len(batches):
                state.epoch, state.next_batch = state.epoch + 1, 0
                if state.epoch in self.intermediate_epochs():
                    self.save_epoch(state)
        return state

    # --- per-epoch outputs (save_every_n_epochs, sample prompts)
    def intermediate_epochs(self) -> set[int]:
        """Epochs before the last that leave a LoRA (sd-scripts' rule: every n-th, not the last)."""
        every = self.settings.save_every_n_epochs
        return set(saved_epochs(self.schedule.epochs, every)[:-1]) if every else set()

    def save_epoch(self, state: TrainingState) -> None:
        """``<output_name>-00000N.safetensors`` and this epoch's samples, in sd-scripts' layout."""
        folder = self.request.epoch_output_dir
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / epoch_lora_filename(self.request.output_name, state.epoch)
        temporary = path.with_suffix(".tmp")
        save_file(self.lora_tensors(), str(temporary), metadata=self.metadata(state))
        temporary.replace(path)
        logger.info("saved epoch %d LoRA to %s", state.epoch, path)
        self.render_samples(state.epoch)

    def render_samples(self, epoch: int) -> list[Path]:
        """Render each sample prompt with the LoRA as trained so far (eval mode, RNG untouched)."""
        prompts = self.request.sample_prompts
        if not prompts:
            return []
        folder = self.request.epoch_output_dir / SAMPLE_SUBFOLDER
        folder.mkdir(parents=True, exist_ok=True)
        trained = [m for m in self.family.model_parts().values() if m.training]
        rng_state = torch.get_rng_state()
        for module in trained:
            module.eval()
        written = []
        try:
            for index, prompt in enumerate(prompts):
                width, height = sample_size(prompt, self.fm_type)
                seed = prompt.seed if prompt.seed is not None else self.seed
                with (
                    torch.no_grad(),
                    torch.autocast(
                        self.precision.device.type,
                        dtype=self.precision.autocast_dtype or torch.float32,
                        enabled=self.precision.autocast_dtype is not None,
                    ),
                ):
                    image = self.family.render_sample(
                        prompt.prompt,
                        prompt.negative_prompt,
                        steps=prompt.steps or DEFAULT_SAMPLE_STEPS,
                        guidance_scale=prompt.cfg_scale
                        if prompt.cfg_scale is not None
                        else DEFAULT_CFG_SCALE,
                        width=width,
                        height=height,
                        generator=torch.Generator(device="cpu").manual_seed(seed),
                    )
                path = folder / sample_filename(self.request.output_name, epoch, index)
                image.save(path, format="PNG")
                written.append(path)
        finally:
            for module in trained:
                module.train()
            torch.set_rng_state(rng_state)
        logger.info("rendered %d sample(s) for epoch %d", len(written), epoch)
        return written

    def _report(self, state: TrainingState, started: float, steps_at_start: int) -> None:
        done = state.global_step - steps_at_start
        per_step = (time.monotonic() - started) / max(1, done)
        remaining = self.schedule.max_steps - state.global_step
        self.request.progress.update(
            step=state.global_step,
            epoch=min(state.epoch + 1, self.schedule.epochs),
            loss=state.last_loss,
            eta_seconds=round(per_step * remaining, 1),
        )
        if self.request.metrics is not None:
            self.request.metrics.record(
                step=state.global_step,
                epoch=min(state.epoch + 1, self.schedule.epochs),
                loss=state.last_loss,
                learning_rate=float(self.lr_scheduler.get_last_lr()[0]),  # the denoiser group's
                total_steps=self.schedule.max_steps,
            )
        if state.global_step % 10 == 0 or remaining == 0:
            logger.info(
                "step %d/%d loss %.4f", state.global_step, self.schedule.max_steps, state.last_loss or 0
            )

    # --- save
    def metadata(self, state: TrainingState) -> dict[str, str]:
        config, dataset = self.config, self.request.dataset  # ignored_parameters lists the request's
        width, height = self.bucket_settings.resolution
        base_lr = self.settings.learning_rate
        values: dict[str, Any] = {
            "ss_network_module": self.spec.network_module,
            "ss_network_dim": self.settings.network_dim,
            "ss_network_alpha": self.settings.network_alpha,
            "ss_network_dropout": self.settings.network_dropout,
            "ss_base_model_version": self.spec.base_model_version,
            "ss_v2": False,
            "ss_sd_model_name": self.request.model_path.name,
            "ss_output_name": self.request.output_name,
            "ss_learning_rate": base_lr,
            "ss_unet_lr": self.settings.unet_learning_rate,
            "ss_text_encoder_lr": self.settings.text_encoder_learning_rate,
            "ss_network_train_unet_only": not self.train_text,
            "ss_num_train_images": dataset.images_with_repeats,
            "ss_num_reg_images": 0,
            "ss_num_batches_per_epoch": self.schedule.batches_per_epoch,
            "ss_num_epochs": self.schedule.epochs,
            "ss_epoch": min(state.epoch, self.schedule.epochs),
            "ss_steps": state.global_step,
            "ss_max_train_steps": self.schedule.max_steps,
            "ss_batch_size_per_device": self.batch_size,
            "ss_total_batch_size": self.batch_size * self.settings.gradient_accumulation_steps,
            "ss_gradient_accumulation_steps": self.settings.gradient_accumulation_steps,
            "ss_gradient_checkpointing": self.settings.gradient_checkpointing,
            "ss_resolution": f"({width}, {height})",
            "ss_enable_bucket": self.bucket_settings.enabled,
            "ss_min_bucket_reso": self.bucket_settings.min_reso,
            "ss_max_bucket_reso": self.bucket_settings.max_reso,
            "ss_bucket_no_upscale": self.bucket_settings.no_upscale,
            "ss_seed": self.seed,
            "ss_mixed_precision": self.precision.label,
            "ss_optimizer": self.optimizer_name,
            "ss_lr_scheduler": self.settings.lr_scheduler,
            "ss_lr_warmup_steps": self.settings.lr_warmup_steps,
            "ss_max_grad_norm": self.settings.max_grad_norm,
            "ss_clip_skip": self.settings.clip_skip,
            "ss_noise_offset": self.settings.noise_offset,
            "ss_min_snr_gamma": self.settings.min_snr_gamma,
            "ss_cache_latents": self.settings.cache_latents,
            "ss_flip_aug": self.settings.flip_aug,
            "ss_shuffle_caption": self.settings.shuffle_caption,
            "ss_keep_tokens": self.settings.keep_tokens,
            "ss_caption_dropout_rate": self.settings.caption_dropout_rate,
            "ss_tag_frequency": dataset.tag_frequency,
            "ss_dataset_dirs": {
                c.folder.name: {"n_repeats": c.repeats, "img_count": len(c.images)} for c in dataset.concepts
            },
            "ss_training_started_at": self.started_at.timestamp(),
            "ss_training_finished_at": datetime.now(UTC).timestamp(),
            "modelspec.sai_model_spec": "1.0.0",
            "modelspec.architecture": self.spec.modelspec_architecture,
            "modelspec.implementation": self.spec.modelspec_implementation,
            "modelspec.title": self.request.output_name,
            "modelspec.resolution": f"{width}x{height}",
            "modelspec.date": self.started_at.date().isoformat(),
            # What sd-scripts writes for --metadata_trigger_phrase (v0.10.1 library/sai_model_spec.py).
            "modelspec.trigger_phrase": self.request.trigger_word,  # None: left out
            "lora_on_aws.engine": Engine.DIFFUSERS.value,
            "lora_on_aws.job_id": self.request.job_id,
            "lora_on_aws.optimizer_fallback": self.optimizer_fallback,
            "lora_on_aws.ignored_parameters": ignored_parameters(config),
        }
        return kohya.stringify_metadata(values)

    def lora_tensors(self) -> dict[str, torch.Tensor]:
        return self.family.kohya_lora_tensors(_SAVE_DTYPES[self.settings.save_precision or "float"])

    def write_lora(self, state: TrainingState) -> Path:
        self.request.progress.update(phase=TrainingPhase.SAVING, force=True)
        self.request.output_dir.mkdir(parents=True, exist_ok=True)
        path = self.request.output_dir / f"{self.request.output_name}.safetensors"
        save_file(self.lora_tensors(), str(path), metadata=self.metadata(state))
        return path


def run_diffusers_engine(request: EngineRequest) -> EngineResult:
    """Train a LoRA with diffusers + PEFT; resume from saved state when the checkpoints hold one."""
    started = time.monotonic()
    trainer = DiffusersTrainer(request)
    trainer.load()
    trainer.prepare_data()
    trainer.build_optimization()
    state = trainer.train(trainer.load_state())
    seconds = time.monotonic() - started
    if request.stop_requested.is_set() and state.global_step < trainer.schedule.max_steps:
        return EngineResult(Engine.DIFFUSERS, None, state.global_step, state.epoch, state.last_loss, seconds)
    lora_path = trainer.write_lora(state)
    trainer.render_samples(trainer.schedule.epochs)
    return EngineResult(
        Engine.DIFFUSERS, lora_path, state.global_step, trainer.schedule.epochs, state.last_loss, seconds
    )

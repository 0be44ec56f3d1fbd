"""What SD 1.5 and SDXL share: a UNet denoiser trained on a DDPM noise schedule.

Both are latent-diffusion families: noise is added with the DDPM schedule of the base model's
scheduler config and the UNet predicts the noise (epsilon) or the velocity (v-prediction). A
flow-matching family (FLUX.1, SD 3.5) noises and targets differently; its adapter implements
``FamilyAdapter`` itself instead of extending this class.
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers import DDPMScheduler
from diffusers.training_utils import compute_snr

from training_container.engines.families.base import FamilyAdapter, NoisyBatch
from training_container.errors import JobFailure
from training_container.ldm_layout import unet_module_to_ldm
from training_container.model_loading import BasePipeline

# The Linear layers sd-scripts' networks/lora.py wraps: those inside UNET_TARGET_REPLACE_MODULE
# (Transformer2DModel) and TEXT_ENCODER_TARGET_REPLACE_MODULE (CLIPAttention, CLIPMLP).
UNET_TARGET_MODULES = ("to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "ff.net.0.proj", "ff.net.2")
CLIP_TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2")

# The targets this trainer knows how to compute; anything else (a flow-matching scheduler, which
# declares no prediction type, or "sample") would train against the wrong target without an error.
PREDICTION_TYPES = ("epsilon", "v_prediction")


def check_prediction_type(prediction_type: str | None) -> None:
    """Refuse, before any step, a scheduler whose prediction type this trainer cannot train."""
    if prediction_type not in PREDICTION_TYPES:
        found = "declares no prediction type" if prediction_type is None else f"predicts {prediction_type!r}"
        raise JobFailure(
            f"the base model's scheduler {found}; the diffusers engine trains "
            f"only {' and '.join(PREDICTION_TYPES)} models of this family"
        )


class StableDiffusionAdapter(FamilyAdapter):
    """The UNet + DDPM part of SD 1.5 and SDXL; the subclasses add text encoding."""

    denoiser_lora_targets = UNET_TARGET_MODULES
    text_encoder_lora_targets = CLIP_TARGET_MODULES
    denoiser_state_key = "unet"

    def __init__(self, pipe: BasePipeline) -> None:
        super().__init__(pipe)
        # The base scheduler's own config: DDPMScheduler.from_config would fill in "epsilon" for
        # a scheduler that declares none (flow matching) and hide the mismatch.
        prediction_type = pipe.scheduler.config.get("prediction_type")
        check_prediction_type(prediction_type)
        self.noise_scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
        self.prediction_type: str = prediction_type

    @property
    def denoiser(self) -> torch.nn.Module:
        unet: torch.nn.Module = self.pipe.unet
        return unet

    @staticmethod
    def clip_token_ids(tokenizer: Any, captions: list[str], device: torch.device) -> torch.Tensor:
        """Captions padded and truncated to the tokenizer's 77 tokens, as sd-scripts tokenizes."""
        ids: torch.Tensor = tokenizer(
            captions,
            padding="max_length",
            max_length=tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        ).input_ids
        return ids.to(device)

    def noisy_input(self, latents: torch.Tensor, noise_offset: float) -> NoisyBatch:
        """DDPM forward process; ``noise_offset`` as sd-scripts' apply_noise_offset (per channel)."""
        device = latents.device
        noise = torch.randn_like(latents)
        if noise_offset:
            noise = noise + noise_offset * torch.randn(
                latents.shape[0], latents.shape[1], 1, 1, device=device
            )
        steps = self.noise_scheduler.config.num_train_timesteps
        timesteps = torch.randint(0, steps, (latents.shape[0],), device=device).long()
        noisy = self.noise_scheduler.add_noise(latents, noise, timesteps)
        target = (
            self.noise_scheduler.get_velocity(latents, noise, timesteps)
            if self.prediction_type == "v_prediction"
            else noise
        )
        return NoisyBatch(noisy=noisy, timesteps=timesteps, target=target)

    def loss_weights(self, batch: NoisyBatch, min_snr_gamma: float | None) -> torch.Tensor | None:
        """Min-SNR-gamma weighting (sd-scripts' custom_train_functions.apply_snr_weight)."""
        if not min_snr_gamma:
            return None
        snr = compute_snr(self.noise_scheduler, batch.timesteps)
        clamped = torch.clamp(snr, max=float(min_snr_gamma))
        return clamped / (snr + 1) if self.prediction_type == "v_prediction" else clamped / snr

    def predict(self, batch: NoisyBatch, conditioning: dict[str, Any]) -> torch.Tensor:
        unet: Any = self.denoiser
        output = unet(batch.noisy.to(unet.dtype), batch.timesteps, **conditioning)
        prediction: torch.Tensor = output.sample.float()
        return prediction

    def denoiser_lora_name(self, module_path: str) -> str:
        """``lora_unet_…``: diffusers module names, or the original (LDM/SGM) ones where the
        family's sd-scripts trains on that layout (``FamilySpec.lora_unet_ldm_names``)."""
        path = (
            unet_module_to_ldm(module_path, self.pipe.unet.config)
            if self.spec.lora_unet_ldm_names
            else module_path
        )
        return "lora_unet_" + path.replace(".", "_")

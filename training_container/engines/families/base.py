"""What the diffusers trainer asks of a base-model family: the one seam where families differ.

The trainer (``training_container.engines.diffusers_engine``) owns everything the families share:
the loop, gradient accumulation, stop and resume, progress, the optimizer, the Kohya export and
its metadata. A ``FamilyAdapter`` owns the rest: which networks of the pipeline are trained and
where LoRA goes in them, how captions become conditioning, how latents are noised and what the
denoiser must predict, the extra conditioning the denoiser takes, the Kohya key names of its
LoRA modules, and how a sample image is drawn. A new family (FLUX.1, SD 3.5) is one new module
implementing this class, registered in ``training_container.engines.families.ADAPTERS``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, ClassVar, Self

import torch
from PIL.Image import Image

from functions.domain.families import FAMILIES, ComponentRole, FamilySpec, FmType
from training_container.engines import kohya_lora_format as kohya
from training_container.errors import JobFailure
from training_container.model_loading import BasePipeline, load_single_file_pipeline

# A batch of encoded captions by name; every tensor has the batch as its first dimension, so the
# trainer can cache and re-stack them row by row without knowing what they are.
PromptEmbeddings = dict[str, torch.Tensor]
# Module path inside one model -> its Kohya LoRA name (``lora_unet_…``, ``lora_te1_…``).
LoraNamer = Callable[[str], str]


@dataclass(frozen=True)
class NoisyBatch:
    """One training batch after noising: what the denoiser sees, and what it must predict."""

    noisy: torch.Tensor  # the denoiser's input
    timesteps: torch.Tensor  # one per sample
    target: torch.Tensor  # the training target (same shape as the prediction)


class FamilyAdapter(ABC):
    """One base-model family seen by the trainer; bound to the family's loaded pipeline."""

    fm_type: ClassVar[FmType]
    # PEFT ``target_modules`` (module-name suffixes) of the denoiser and of each text encoder.
    denoiser_lora_targets: ClassVar[tuple[str, ...]]
    text_encoder_lora_targets: ClassVar[tuple[str, ...]]
    # The denoiser's key in the saved resume state (the text encoders are te0, te1, …).
    denoiser_state_key: ClassVar[str]

    def __init__(self, pipe: BasePipeline) -> None:
        self.pipe = pipe

    @property
    def spec(self) -> FamilySpec:
        return FAMILIES[self.fm_type]

    @classmethod
    def load(
        cls, model_path: Path, dtype: torch.dtype, components: Mapping[ComponentRole, Path] | None = None
    ) -> Self:
        """The family's pipeline from a single file or a diffusers folder, offline; the
        single-file families take no component files (FamilySpec.components is empty)."""
        if components:
            names = ", ".join(sorted(role.value for role in components))
            raise JobFailure(f"{FAMILIES[cls.fm_type].display_name} models take no component files ({names})")
        return cls(load_single_file_pipeline(model_path, cls.fm_type, dtype=dtype))

    def sample_pipeline_options(self) -> dict[str, Any]:
        """Extra arguments of the pipeline's call for samples, so that they read prompts as
        training did (the flow families' T5 token budget); none for the Stable Diffusion families."""
        return {}

    def configure(self, config: Mapping[str, Any]) -> None:  # noqa: B027 (optional hook)
        """Take the job's family-specific training options (FLUX.1's timestep sampling, SD 3.5's
        weighting); the Stable Diffusion families have none beyond what the trainer reads."""

    # --- what is trained
    @property
    @abstractmethod
    def denoiser(self) -> torch.nn.Module:
        """The network that predicts the target from noisy latents (a UNet, or a transformer)."""

    @property
    @abstractmethod
    def text_encoders(self) -> list[torch.nn.Module]:
        """The text encoders, in the order of ``FamilySpec.lora_text_encoder_prefixes``."""

    @property
    def vae(self) -> torch.nn.Module:
        vae: torch.nn.Module = self.pipe.vae
        return vae

    def denoiser_lora_target_modules(self) -> list[str]:
        """The denoiser's PEFT ``target_modules``: the suffixes, unless a family needs exact module
        paths (a suffix that also names a layer sd-scripts leaves alone, like FLUX's final ``proj_out``)."""
        return list(self.denoiser_lora_targets)

    def share_denoiser_lora_parts(self) -> None:  # noqa: B027 (optional hook)
        """Called once PEFT has put LoRA on the denoiser, before its parameters are collected:
        make the LoRAs the modules sd-scripts trains. SD 1.5 / SDXL: one PEFT layer is one
        sd-scripts module already; FLUX.1 / SD 3.5 share one down projection among the diffusers
        layers of a fused original layer (fused_lora.share_fused_downs)."""

    def model_parts(self) -> dict[str, torch.nn.Module]:
        """The networks LoRA can train, by their key in the saved resume state."""
        encoders = {f"te{index}": encoder for index, encoder in enumerate(self.text_encoders)}
        return {self.denoiser_state_key: self.denoiser, **encoders}

    def encode_latents(self, pixels: torch.Tensor, device: torch.device) -> torch.Tensor:
        """Images in [-1, 1] -> the latents the denoiser is trained on (fp32)."""
        vae: Any = self.vae
        with torch.no_grad():
            latents = vae.encode(pixels.to(device, vae.dtype)).latent_dist.sample()
        return latents.float() * float(vae.config.scaling_factor)

    # --- prompts and conditioning
    @abstractmethod
    def encode_prompts(
        self, captions: list[str], layer_from_last: int, device: torch.device
    ) -> PromptEmbeddings:
        """Captions -> the text conditioning, the way the family was trained (``clip_skip``)."""

    @abstractmethod
    def conditioning(self, prompts: PromptEmbeddings, bucket: tuple[int, int]) -> dict[str, Any]:
        """The denoiser's keyword arguments besides its noisy input and timesteps: the prompt
        embeddings and any extra conditioning (SDXL's pooled embedding and size/crop ids)."""

    # --- noise, target, prediction
    @abstractmethod
    def noisy_input(self, latents: torch.Tensor, noise_offset: float) -> NoisyBatch:
        """Draw noise and timesteps for a batch of latents; refuses targets it cannot compute."""

    @abstractmethod
    def loss_weights(self, batch: NoisyBatch, min_snr_gamma: float | None) -> torch.Tensor | None:
        """Per-sample loss weights (min-SNR weighting), or None for a plain mean."""

    @abstractmethod
    def predict(self, batch: NoisyBatch, conditioning: dict[str, Any]) -> torch.Tensor:
        """The denoiser's prediction for a noisy batch, in fp32."""

    # --- Kohya key names
    @abstractmethod
    def denoiser_lora_name(self, module_path: str) -> str:
        """The Kohya (sd-scripts) name of a LoRA module inside the denoiser."""

    def lora_namers(self) -> list[tuple[torch.nn.Module, LoraNamer]]:
        """Each trainable network with the Kohya name of its LoRA modules (sd-scripts' order)."""
        namers: list[tuple[torch.nn.Module, LoraNamer]] = [(self.denoiser, self.denoiser_lora_name)]
        for prefix, encoder in zip(self.spec.lora_text_encoder_prefixes, self.text_encoders, strict=True):
            namers.append((encoder, partial(kohya.text_encoder_lora_name, prefix=prefix)))
        return namers

    def kohya_lora_tensors(self, dtype: torch.dtype) -> dict[str, torch.Tensor]:
        """The trained LoRA weights under sd-scripts' key names, one module per PEFT layer; a family
        whose sd-scripts layers fuse several diffusers layers overrides this."""
        tensors: dict[str, torch.Tensor] = {}
        for model, name_of in self.lora_namers():
            tensors.update(kohya.kohya_tensors(model, name_of, dtype))
        return tensors

    # --- sampling
    def render_sample(
        self,
        prompt: str,
        negative_prompt: str | None,
        *,
        steps: int,
        guidance_scale: float,
        width: int,
        height: int,
        generator: torch.Generator,
    ) -> Image:
        """One sample image with the LoRA as trained so far (the caller sets eval mode, no_grad)."""
        # The API refuses other sides; a job written by hand is rounded down as sd-scripts rounds.
        step = self.spec.sample_side_multiple
        width, height = (max(step, side - side % step) for side in (width, height))
        self.pipe.set_progress_bar_config(disable=True)
        image: Image = self.pipe(
            prompt=prompt,
            negative_prompt=negative_prompt,
            num_inference_steps=steps,
            guidance_scale=guidance_scale,
            width=width,
            height=height,
            generator=generator,
            **self.sample_pipeline_options(),
        ).images[0]
        return image

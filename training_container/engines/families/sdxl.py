"""SDXL: two CLIP text encoders, a pooled embedding, and size/crop micro-conditioning."""

from __future__ import annotations

from typing import Any

import torch

from functions.domain.families import FmType
from training_container.engines.families.base import PromptEmbeddings
from training_container.engines.families.stable_diffusion import StableDiffusionAdapter


def sdxl_time_ids(bucket: tuple[int, int], batch: int, device: torch.device) -> torch.Tensor:
    """SDXL's micro-conditioning: original size, crop origin, target size (h, w order); images are
    resized to their bucket without a crop, as sd-scripts' bucketed datasets are."""
    width, height = bucket
    return torch.tensor([[height, width, 0, 0, height, width]] * batch, dtype=torch.float32, device=device)


class SDXLAdapter(StableDiffusionAdapter):
    fm_type = FmType.SDXL

    @property
    def text_encoders(self) -> list[torch.nn.Module]:
        return [self.pipe.text_encoder, self.pipe.text_encoder_2]

    def encode_prompts(
        self, captions: list[str], layer_from_last: int, device: torch.device
    ) -> PromptEmbeddings:
        """Both encoders' penultimate layers side by side, and the second one's pooled output
        (sd-scripts' sdxl_train_util; SDXL takes no ``clip_skip``: FamilySpec.refused_kohya_params)."""
        first = self._encode(self.pipe.tokenizer, self.pipe.text_encoder, captions, device)
        second = self._encode(self.pipe.tokenizer_2, self.pipe.text_encoder_2, captions, device)
        embeds = torch.cat([first.hidden_states[-2], second.hidden_states[-2]], dim=-1)
        return {"encoder_hidden_states": embeds, "text_embeds": second.text_embeds}

    def _encode(self, tokenizer: Any, encoder: Any, captions: list[str], device: torch.device) -> Any:
        return encoder(self.clip_token_ids(tokenizer, captions, device), output_hidden_states=True)

    def conditioning(self, prompts: PromptEmbeddings, bucket: tuple[int, int]) -> dict[str, Any]:
        embeds, pooled = prompts["encoder_hidden_states"], prompts["text_embeds"]
        return {
            "encoder_hidden_states": embeds.to(self.pipe.unet.dtype),
            "added_cond_kwargs": {
                "text_embeds": pooled,
                "time_ids": sdxl_time_ids(bucket, len(embeds), embeds.device),
            },
        }

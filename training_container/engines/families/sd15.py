"""SD 1.5: one CLIP text encoder; ``clip_skip`` picks the hidden layer, as sd-scripts does."""

from __future__ import annotations

from typing import Any

import torch

from functions.domain.families import FmType
from training_container.engines.families.base import PromptEmbeddings
from training_container.engines.families.stable_diffusion import StableDiffusionAdapter


class SD15Adapter(StableDiffusionAdapter):
    fm_type = FmType.SD15

    @property
    def text_encoders(self) -> list[torch.nn.Module]:
        return [self.pipe.text_encoder]

    def encode_prompts(
        self, captions: list[str], layer_from_last: int, device: torch.device
    ) -> PromptEmbeddings:
        """The last hidden state, or with ``clip_skip`` > 1 an earlier layer through the final layer
        norm (sd-scripts' train_util.get_hidden_states)."""
        tokenizer, encoder = self.pipe.tokenizer, self.pipe.text_encoder
        ids = self.clip_token_ids(tokenizer, captions, device)
        output = encoder(ids, output_hidden_states=layer_from_last > 1)
        if layer_from_last <= 1:
            return {"encoder_hidden_states": output.last_hidden_state}
        text_model: Any = getattr(encoder, "text_model", encoder)
        return {"encoder_hidden_states": text_model.final_layer_norm(output.hidden_states[-layer_from_last])}

    def conditioning(self, prompts: PromptEmbeddings, bucket: tuple[int, int]) -> dict[str, Any]:
        return {"encoder_hidden_states": prompts["encoder_hidden_states"].to(self.pipe.unet.dtype)}

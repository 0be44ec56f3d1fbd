"""A natural-language captioner: a transformers image-to-text model (BLIP, as sd-scripts'
``finetune/make_captions.py`` uses), loaded from a local folder only (network isolation)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PIL import Image


class ImageCaptioner:
    """Greedy decoding (sd-scripts' ``make_captions.py`` default is beam search with 1 beam)."""

    def __init__(self, model_dir: Path, max_new_tokens: int) -> None:
        import torch
        from transformers import BlipForConditionalGeneration, BlipProcessor

        self._torch = torch
        self._device = "cuda" if torch.cuda.is_available() else "cpu"
        self._processor = BlipProcessor.from_pretrained(model_dir, local_files_only=True)
        # Any: transformers 5 types from_pretrained through a decorator mypy misreads
        loader: Any = BlipForConditionalGeneration
        self._model: Any = loader.from_pretrained(model_dir, local_files_only=True)
        self._model.to(self._device).eval()
        self._max_new_tokens = max_new_tokens

    def caption(self, image: Image.Image) -> str:
        inputs = self._processor(images=image.convert("RGB"), return_tensors="pt").to(self._device)
        with self._torch.inference_mode():
            tokens = self._model.generate(**inputs, max_new_tokens=self._max_new_tokens, do_sample=False)
        text: str = self._processor.decode(tokens[0], skip_special_tokens=True)
        return " ".join(text.replace(",", " ").split())  # one caption part: no commas or line breaks

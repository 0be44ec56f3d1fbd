"""A WD14-style tagger: SmilingWolf's ``wd-*-tagger`` ONNX model and its ``selected_tags.csv``.

Preprocessing follows sd-scripts v0.10.1 ``finetune/tag_images_by_wd14_tagger.py``
(``preprocess_image``): RGB to BGR, pad to a square with white (255), resize to the model's side
(448), float32 in 0..255 (no normalisation), NHWC. One deliberate difference: sd-scripts resizes
down with ``cv2.resize(image, size, cv2.INTER_AREA)``, whose third positional argument is ``dst``,
so OpenCV's default bilinear filter is what runs; Pillow's bilinear is used here (no OpenCV in the
image). Tag selection is ``functions.domain.captioning.select_tags``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from functions.domain.captioning import WD14_IMAGE_SIZE, TaggerSettings, TagList, parse_tag_csv, select_tags

MODEL_FILENAME = "model.onnx"
TAGS_FILENAME = "selected_tags.csv"


def preprocess_image(image: Image.Image, size: int = WD14_IMAGE_SIZE) -> np.ndarray:
    """One image as the tagger reads it: (size, size, 3) float32 BGR on a white square."""
    pixels = np.asarray(image.convert("RGB"))[:, :, ::-1]  # RGB -> BGR
    side = max(pixels.shape[0:2])
    pad_x, pad_y = side - pixels.shape[1], side - pixels.shape[0]
    pad_l, pad_t = pad_x // 2, pad_y // 2
    square = np.pad(
        pixels, ((pad_t, pad_y - pad_t), (pad_l, pad_x - pad_l), (0, 0)), mode="constant", constant_values=255
    )
    if side != size:
        resample = Image.Resampling.BILINEAR if side > size else Image.Resampling.LANCZOS
        square = np.asarray(Image.fromarray(np.ascontiguousarray(square)).resize((size, size), resample))
    return square.astype(np.float32)


class Wd14Tagger:
    """Loads the ONNX session once; ``tag`` turns images into tag lists."""

    def __init__(self, model_dir: Path, settings: TaggerSettings) -> None:
        import onnxruntime as ort  # the image's captioning extra; imported only in this mode

        available = ort.get_available_providers()
        providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
        self._session = ort.InferenceSession(str(model_dir / MODEL_FILENAME), providers=providers)
        model_input = self._session.get_inputs()[0]
        self._input_name = model_input.name
        side = model_input.shape[1]
        self._size = side if isinstance(side, int) else WD14_IMAGE_SIZE
        self.tags: TagList = parse_tag_csv((model_dir / TAGS_FILENAME).read_text(encoding="utf-8"))
        self._settings = settings

    def tag(self, image: Image.Image) -> list[str]:
        batch = preprocess_image(image, self._size)[None]
        probabilities = self._session.run(None, {self._input_name: batch})[0][0]
        return select_tags([float(p) for p in probabilities], self.tags, self._settings)

"""The captions job: read the dataset channel, caption each image (cache first), write a new dataset.

    dataset channel ─▶ for each image: existing caption? mode? ─▶ cache hit, or run the model(s)
                    ─▶ /opt/ml/model/dataset/ (same layout, new .txt files)
                       /opt/ml/model/cache/<model id>/<sha256>.txt (captions computed here)
                       /opt/ml/model/captions-summary.json (counts, cache hits, per-image failures)

The input channel is never written. The cache channel holds earlier jobs' captions keyed by the
image's SHA-256 and the model's id (functions.domain.captioning.caption_cache_key); a model is
loaded only when some image misses the cache, so a job whose images are all cached runs no model.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from functions.domain.captioning import (
    CAPTION_SEPARATOR,
    CAPTIONED_DATASET_FOLDER,
    CAPTIONING_SUMMARY_FILENAME,
    NEW_CACHE_FOLDER,
    CaptioningJobSpec,
    CaptioningSummary,
    ImageFailure,
    caption_cache_key,
    merge_caption,
    needs_generation,
)
from functions.domain.dataset_rules import CAPTION_EXTENSION, IMAGE_EXTENSIONS
from training_container.errors import JobFailure
from training_container.progress import write_json_atomically

logger = logging.getLogger("training_container.captioning")

MODELS_DIR_ENV = "LORA_CAPTIONING_MODELS_DIR"
DEFAULT_MODELS_DIR = Path("/opt/captioning-models")  # baked by the Dockerfile
TAGGER_FOLDER = "wd14-tagger"
CAPTIONER_FOLDER = "captioner"
MODEL_ID_FILENAME = "MODEL_ID"  # "<repo>@<revision>", written when the model is baked


def models_dir() -> Path:
    return Path(os.environ.get(MODELS_DIR_ENV) or DEFAULT_MODELS_DIR)


@dataclass
class CaptionModel:
    """One model behind the cache: its id (part of the cache key) and a lazily loaded runner."""

    model_id: str
    load: Callable[[], Callable[[Image.Image], str]]
    runner: Callable[[Image.Image], str] | None = None

    def run(self, image: Image.Image) -> str:
        if self.runner is None:
            logger.info("loading captioning model %s", self.model_id)
            try:
                self.runner = self.load()
            except Exception as error:  # every image would fail the same way: fail the job once
                raise JobFailure(f"could not load captioning model {self.model_id}: {error}") from error
        return self.runner(image)


def _model_id(folder: Path) -> str:
    try:
        return (folder / MODEL_ID_FILENAME).read_text(encoding="utf-8").strip()
    except FileNotFoundError as missing:
        raise JobFailure(f"captioning model {folder.name} is not installed in this image") from missing


def caption_models(spec: CaptioningJobSpec, root: Path) -> list[CaptionModel]:
    """The models the spec asks for, natural-language captioner first, then the tagger.

    The tagger's id carries a digest of its settings: thresholds change its output, so tags chosen
    with other settings are never served from the cache.
    """
    models: list[CaptionModel] = []
    captioner_dir, tagger_dir = root / CAPTIONER_FOLDER, root / TAGGER_FOLDER

    def load_captioner() -> Callable[[Image.Image], str]:
        from training_container.captioning.image_captioner import ImageCaptioner

        return ImageCaptioner(captioner_dir, spec.max_caption_tokens).caption

    def load_tagger() -> Callable[[Image.Image], str]:
        from training_container.captioning.wd14_tagger import Wd14Tagger

        tagger = Wd14Tagger(tagger_dir, spec.tagger)
        return lambda image: CAPTION_SEPARATOR.join(tagger.tag(image))

    if spec.use_captioner:
        tokens = spec.max_caption_tokens
        models.append(CaptionModel(f"{_model_id(captioner_dir)}+tokens{tokens}", load_captioner))
    if spec.use_tagger:
        settings_digest = hashlib.sha256(spec.tagger.model_dump_json().encode()).hexdigest()[:12]
        models.append(CaptionModel(f"{_model_id(tagger_dir)}+{settings_digest}", load_tagger))
    if not models:
        raise JobFailure("a captions job needs the tagger, the captioner or both")
    return models


def dataset_images(dataset_dir: Path) -> list[Path]:
    """Every image of the Kohya layout, relative to the channel, in a stable order."""
    return sorted(
        path.relative_to(dataset_dir)
        for path in dataset_dir.glob("*/*")
        if path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")
    )


def _existing_caption(image: Path) -> str | None:
    caption = image.with_suffix(CAPTION_EXTENSION)
    return caption.read_text(encoding="utf-8") if caption.is_file() else None


class CaptionCache:
    """Earlier jobs' captions (read-only channel) plus the ones this job computes (written out)."""

    def __init__(self, previous: Path | None, new: Path) -> None:
        self._previous, self._new = previous, new

    def get(self, key: str) -> str | None:
        for folder in (self._new, self._previous):
            if folder is not None and (folder / key).is_file():
                return (folder / key).read_text(encoding="utf-8")
        return None

    def put(self, key: str, text: str) -> None:
        target = self._new / key
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")


def run_captioning(
    spec: CaptioningJobSpec,
    dataset_dir: Path,
    cache_dir: Path | None,
    output_dir: Path,
    models: list[CaptionModel],
    on_progress: Callable[[int, int], None] = lambda done, total: None,
) -> CaptioningSummary:
    """Caption every image into ``output_dir``; one image's failure never stops the others."""
    started = time.monotonic()
    out_dataset = output_dir / CAPTIONED_DATASET_FOLDER
    cache = CaptionCache(cache_dir, output_dir / NEW_CACHE_FOLDER)
    images = dataset_images(dataset_dir)
    failures: list[ImageFailure] = []
    captioned = kept = hits = runs = 0
    for done, relative in enumerate(images, start=1):
        source, target = dataset_dir / relative, out_dataset / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        existing = _existing_caption(source)
        caption = existing
        try:
            if not needs_generation(existing, spec.mode) and not spec.trigger_word:
                kept += 1
            else:
                parts: list[str] = []
                if needs_generation(existing, spec.mode):
                    sha256 = hashlib.sha256(source.read_bytes()).hexdigest()
                    for model in models:
                        key = caption_cache_key(sha256, model.model_id)
                        text = cache.get(key)
                        if text is None:
                            with Image.open(source) as image:
                                text = model.run(image)
                            cache.put(key, text)
                            runs += 1
                        else:
                            hits += 1
                        parts.append(text)
                caption = merge_caption(existing, ", ".join(parts), spec.mode, spec.trigger_word)
                if not caption:
                    raise ValueError("the models produced no caption for this image")
                captioned += 1
        except JobFailure:
            raise
        except Exception as error:  # one bad image is reported, the job goes on
            failures.append(ImageFailure(path=relative.as_posix(), reason=f"{type(error).__name__}: {error}"))
            caption = existing
        if caption is not None:
            target.with_suffix(CAPTION_EXTENSION).write_text(caption, encoding="utf-8")
        on_progress(done, len(images))
    summary = CaptioningSummary(
        job_id=spec.job_id,
        images=len(images),
        captioned=captioned,
        kept=kept,
        cache_hits=hits,
        model_runs=runs,
        models=[m.model_id for m in models],
        failures=failures,
        duration_seconds=round(time.monotonic() - started, 3),
    )
    write_json_atomically(output_dir / CAPTIONING_SUMMARY_FILENAME, summary.model_dump_json(indent=2))
    return summary

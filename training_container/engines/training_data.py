"""Images and captions for the diffusers engine: buckets, crops, caption handling, batches.

Mirrors sd-scripts' behaviour where users can observe it: each image appears ``repeats`` times
per epoch, aspect-ratio buckets hold a constant pixel area, batches never mix buckets, and
``shuffle_caption``/``keep_tokens``/``caption_dropout_rate`` act on comma-separated tags.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from training_container.dataset_staging import StagedDataset, TrainingImage


@dataclass(frozen=True)
class BucketSettings:
    resolution: tuple[int, int]  # (width, height)
    enabled: bool
    min_reso: int
    max_reso: int
    step: int
    no_upscale: bool


@dataclass(frozen=True)
class Sample:
    image: TrainingImage
    bucket: tuple[int, int]  # (width, height) the image is resized and cropped to
    index: int  # position in the dataset, keys the latent cache


def parse_resolution(value: object) -> tuple[int, int]:
    sides = [int(side) for side in str(value).split(",")]
    return (sides[0], sides[0]) if len(sides) == 1 else (sides[0], sides[1])


def bucket_resolutions(settings: BucketSettings) -> list[tuple[int, int]]:
    """All (w, h) on the step grid within [min, max] whose area fits the training area."""
    area = settings.resolution[0] * settings.resolution[1]
    buckets = set()
    for width in range(settings.min_reso, settings.max_reso + 1, settings.step):
        height = min(settings.max_reso, (area // width) // settings.step * settings.step)
        if height >= settings.min_reso:
            buckets.add((width, height))
            buckets.add((height, width))
    return sorted(buckets)


def choose_bucket(size: tuple[int, int], settings: BucketSettings) -> tuple[int, int]:
    """The bucket for an image of ``size`` (w, h): nearest aspect ratio, or its own size rounded down."""
    if not settings.enabled:
        return settings.resolution
    width, height = size
    area = settings.resolution[0] * settings.resolution[1]
    if settings.no_upscale and width * height <= area:
        step = settings.step
        return (max(step, width // step * step), max(step, height // step * step))
    aspect = width / height
    return min(bucket_resolutions(settings), key=lambda b: abs(math.log(b[0] / b[1]) - math.log(aspect)))


def load_image_tensor(
    path: object, bucket: tuple[int, int], *, flip: bool, random_crop: bool
) -> torch.Tensor:
    """Resize to cover the bucket, crop to it, scale to [-1, 1], CHW float32."""
    with Image.open(str(path)) as raw:
        image = raw.convert("RGB")
    target_w, target_h = bucket
    scale = max(target_w / image.width, target_h / image.height)
    resized = image.resize(
        (max(target_w, round(image.width * scale)), max(target_h, round(image.height * scale))),
        Image.Resampling.LANCZOS,
    )
    spare_w, spare_h = resized.width - target_w, resized.height - target_h
    left = random.randint(0, spare_w) if random_crop else spare_w // 2
    top = random.randint(0, spare_h) if random_crop else spare_h // 2
    cropped = resized.crop((left, top, left + target_w, top + target_h))
    if flip:
        cropped = cropped.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    array = np.asarray(cropped, dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


def transform_caption(
    caption: str, rng: random.Random, *, shuffle: bool, keep_tokens: int, dropout_rate: float
) -> str:
    """sd-scripts' caption handling: whole-caption dropout, then tag shuffling after ``keep_tokens``."""
    if dropout_rate and rng.random() < dropout_rate:
        return ""
    if not shuffle:
        return caption
    tags = [tag.strip() for tag in caption.split(",")]
    kept, rest = tags[:keep_tokens], tags[keep_tokens:]
    rng.shuffle(rest)
    return ", ".join(kept + rest)


def build_samples(dataset: StagedDataset, settings: BucketSettings) -> list[Sample]:
    samples: list[Sample] = []
    for concept in dataset.concepts:
        for image in concept.images:
            with Image.open(image.path) as opened:
                bucket = choose_bucket(opened.size, settings)
            samples.append(Sample(image, bucket, len(samples)))
    return samples


def repeat_counts(dataset: StagedDataset) -> list[int]:
    return [concept.repeats for concept in dataset.concepts for _ in concept.images]


def epoch_batches(
    samples: list[Sample], repeats: list[int], batch_size: int, seed: int, epoch: int
) -> list[list[Sample]]:
    """The batches of one epoch, a pure function of (seed, epoch) so a resumed job replays them."""
    rng = random.Random(seed * 1_000_003 + epoch)
    by_bucket: dict[tuple[int, int], list[Sample]] = {}
    for sample, count in zip(samples, repeats, strict=True):
        by_bucket.setdefault(sample.bucket, []).extend([sample] * count)
    batches: list[list[Sample]] = []
    for bucket in sorted(by_bucket):
        members = by_bucket[bucket]
        rng.shuffle(members)
        batches.extend(members[i : i + batch_size] for i in range(0, len(members), batch_size))
    rng.shuffle(batches)
    return batches

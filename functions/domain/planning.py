"""The training plan computed before launch: total steps, duration and cost.

Steps follow sd-scripts: an epoch is ceil(images x repeats / batch) optimizer steps divided by
gradient accumulation; ``max_train_epochs`` wins over ``max_train_steps``. Throughput comes
from the instance catalogue (batch-1 rates at the family's native resolution), scaled by the
number of pixels and the batch size. Estimates, not promises: the API says so.
"""

from __future__ import annotations

import math

from pydantic import BaseModel

from functions.domain.catalog import (
    ESTIMATED_STARTUP_SECONDS,
    SPOT_PRICE_FACTOR,
    FmType,
    InstanceType,
)
from functions.domain.families import FAMILIES
from functions.domain.kohya_params import ParamValue

NATIVE_PIXELS = {f: spec.native_pixels for f, spec in FAMILIES.items()}
SD_SCRIPTS_DEFAULT_STEPS = 1600


class TrainingPlan(BaseModel):
    images_per_epoch: int
    steps_per_epoch: int
    epochs: int
    total_steps: int
    estimated_seconds: int
    estimated_cost_usd: float
    estimated_spot_cost_usd: float
    price_per_hour_usd: float


def _pixels(resolution: ParamValue | None, fm_type: FmType) -> int:
    if not isinstance(resolution, str):
        return NATIVE_PIXELS[fm_type]
    sides = [int(s) for s in resolution.split(",")]
    return sides[0] * (sides[1] if len(sides) > 1 else sides[0])


def _int(config: dict[str, ParamValue], key: str, default: int) -> int:
    value = config.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def plan_training(
    *,
    weighted_images: int,
    config: dict[str, ParamValue],
    fm_type: FmType,
    instance: InstanceType,
    price_per_hour: float | None = None,
) -> TrainingPlan:
    """Steps, seconds and dollars for a validated config on an instance type."""
    batch = _int(config, "train_batch_size", 1)
    accumulation = _int(config, "gradient_accumulation_steps", 1)
    steps_per_epoch = max(1, math.ceil(math.ceil(weighted_images / batch) / accumulation))
    if "max_train_epochs" in config:
        epochs = _int(config, "max_train_epochs", 1)
        total_steps = steps_per_epoch * epochs
    else:
        total_steps = _int(config, "max_train_steps", SD_SCRIPTS_DEFAULT_STEPS)
        epochs = math.ceil(total_steps / steps_per_epoch)
    rate = instance.steps_per_second[fm_type]
    rate = rate or 0.1  # an instance the family should not run on: estimate pessimistically
    pixel_factor = _pixels(config.get("resolution"), fm_type) / NATIVE_PIXELS[fm_type]
    # Bigger batches use the GPU better: a batch of b costs about b**0.85 single steps.
    seconds_per_step = pixel_factor * (batch**0.85) * accumulation / rate
    seconds = ESTIMATED_STARTUP_SECONDS + total_steps * seconds_per_step
    price = instance.price_per_hour_usd if price_per_hour is None else price_per_hour
    cost = seconds / 3600 * price
    return TrainingPlan(
        images_per_epoch=weighted_images,
        steps_per_epoch=steps_per_epoch,
        epochs=epochs,
        total_steps=total_steps,
        estimated_seconds=round(seconds),
        estimated_cost_usd=round(cost, 4),
        estimated_spot_cost_usd=round(cost * SPOT_PRICE_FACTOR, 4),
        price_per_hour_usd=price,
    )

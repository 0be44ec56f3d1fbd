"""A PNG line chart of a training's loss curve, drawn with Pillow (no plotting library needed).

    render_loss_chart(points, title) -> PIL image: loss against step on the left axis, and the
    learning rate (when the engine reports it) as a thinner line on a right-hand axis.

Axes get "nice" ticks (1, 2 or 5 times a power of ten), labels, and a legend; gaps in the loss
(steps without a finite value) break the line instead of being bridged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from PIL import Image, ImageDraw, ImageFont

WIDTH, HEIGHT = 960, 540
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 80, 90, 50, 60
BACKGROUND = (255, 255, 255)
AXIS = (60, 60, 60)
GRID = (225, 225, 225)
LOSS_COLOUR = (31, 119, 180)
LR_COLOUR = (255, 127, 14)
TEXT = (20, 20, 20)
TICK_LENGTH = 5
TARGET_TICKS = 6
FONT_SIZE = 13


@dataclass(frozen=True)
class Scale:
    """A linear map from data values to pixels along one axis."""

    low: float
    high: float
    pixel_low: float
    pixel_high: float

    def __call__(self, value: float) -> float:
        span = self.high - self.low or 1.0
        return self.pixel_low + (value - self.low) / span * (self.pixel_high - self.pixel_low)


def nice_ticks(low: float, high: float, target: int = TARGET_TICKS) -> list[float]:
    """Round tick values covering [low, high]: steps of 1, 2 or 5 times a power of ten."""
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError("tick bounds must be finite")
    if high < low:
        low, high = high, low
    if high == low:
        pad = abs(low) * 0.1 or 1.0
        low, high = low - pad, high + pad
    raw_step = (high - low) / max(1, target - 1)
    magnitude = 10 ** math.floor(math.log10(raw_step))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw_step)
    first = math.floor(low / step) * step
    ticks: list[float] = []
    value = first
    while value < high + step * 0.5:
        ticks.append(round(value, 12))
        value += step
    return ticks


def tick_label(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1e5 or abs(value) < 1e-3:
        return f"{value:.1e}"
    return f"{value:.6g}"


def _segments(xs: Sequence[float], ys: Sequence[float | None]) -> list[list[tuple[float, float]]]:
    """Runs of consecutive points with a value (None breaks the line)."""
    runs: list[list[tuple[float, float]]] = [[]]
    for x, y in zip(xs, ys, strict=True):
        if y is None:
            if runs[-1]:
                runs.append([])
        else:
            runs[-1].append((x, y))
    return [run for run in runs if run]


def _values(points: Sequence[dict[str, Any]], key: str) -> list[float | None]:
    values: list[float | None] = []
    for point in points:
        value = point.get(key)
        values.append(float(value) if isinstance(value, int | float) and math.isfinite(value) else None)
    return values


class _Canvas:
    def __init__(self, title: str) -> None:
        self.image = Image.new("RGB", (WIDTH, HEIGHT), BACKGROUND)
        self.draw = ImageDraw.Draw(self.image)
        self.font = ImageFont.load_default(size=FONT_SIZE)
        self.left, self.right = MARGIN_LEFT, WIDTH - MARGIN_RIGHT
        self.top, self.bottom = MARGIN_TOP, HEIGHT - MARGIN_BOTTOM
        self.text_centered(title, (WIDTH / 2, MARGIN_TOP / 2))

    def text_centered(self, text: str, at: tuple[float, float], fill: tuple[int, int, int] = TEXT) -> None:
        self.draw.text(at, text, fill=fill, font=self.font, anchor="mm")

    def frame(self) -> None:
        self.draw.rectangle((self.left, self.top, self.right, self.bottom), outline=AXIS)

    def x_axis(self, scale: Scale, ticks: Sequence[float], label: str) -> None:
        for tick in ticks:
            x = scale(tick)
            if self.left - 0.5 <= x <= self.right + 0.5:
                self.draw.line((x, self.top, x, self.bottom), fill=GRID)
                self.draw.line((x, self.bottom, x, self.bottom + TICK_LENGTH), fill=AXIS)
                self.text_centered(tick_label(tick), (x, self.bottom + 16))
        self.text_centered(label, ((self.left + self.right) / 2, HEIGHT - 18))

    def y_axis(
        self, scale: Scale, ticks: Sequence[float], label: str, side: str, colour: tuple[int, int, int]
    ) -> None:
        edge = self.left if side == "left" else self.right
        direction = -1 if side == "left" else 1
        for tick in ticks:
            y = scale(tick)
            if self.top - 0.5 <= y <= self.bottom + 0.5:
                if side == "left":
                    self.draw.line((self.left, y, self.right, y), fill=GRID)
                self.draw.line((edge, y, edge + direction * TICK_LENGTH, y), fill=AXIS)
                anchor = "rm" if side == "left" else "lm"
                self.draw.text((edge + direction * (TICK_LENGTH + 3), y), tick_label(tick), fill=colour,
                               font=self.font, anchor=anchor)  # fmt: skip
        self.draw.text((edge, self.top - 14), label, fill=colour, font=self.font,
                       anchor="lm" if side == "left" else "rm")  # fmt: skip

    def line(self, xs: Sequence[float], ys: Sequence[float | None], x: Scale, y: Scale,
             colour: tuple[int, int, int], width: int) -> None:  # fmt: skip
        for run in _segments(xs, ys):
            pixels = [(x(a), y(b)) for a, b in run]
            if len(pixels) == 1:
                px, py = pixels[0]
                self.draw.ellipse((px - 2, py - 2, px + 2, py + 2), fill=colour)
            else:
                self.draw.line(pixels, fill=colour, width=width, joint="curve")

    def legend(self, entries: Sequence[tuple[str, tuple[int, int, int]]]) -> None:
        x, y = self.right - 150, self.top + 12
        for text, colour in entries:
            self.draw.line((x, y, x + 24, y), fill=colour, width=3)
            self.draw.text((x + 30, y), text, fill=TEXT, font=self.font, anchor="lm")
            y += 16


def _scale_for(
    values: Sequence[float | None], pixel_low: float, pixel_high: float
) -> tuple[Scale, list[float]]:
    present = [v for v in values if v is not None]
    ticks = nice_ticks(min(present), max(present))
    return Scale(ticks[0], ticks[-1], pixel_low, pixel_high), ticks


def render_loss_chart(points: Sequence[dict[str, Any]], title: str) -> Image.Image:
    """The chart of a ``GET /trainings/{id}/metrics`` curve (``points``: step, loss, learning_rate)."""
    steps = [float(p["step"]) for p in points]
    losses = _values(points, "loss")
    if not steps or all(loss is None for loss in losses):
        raise ValueError("the curve has no loss values to plot yet")
    canvas = _Canvas(title)
    x_ticks = nice_ticks(min(steps), max(steps))
    x = Scale(x_ticks[0], x_ticks[-1], canvas.left, canvas.right)
    loss_scale, loss_ticks = _scale_for(losses, canvas.bottom, canvas.top)
    canvas.x_axis(x, x_ticks, "step")
    canvas.y_axis(loss_scale, loss_ticks, "loss", "left", LOSS_COLOUR)
    legend = [("loss", LOSS_COLOUR)]
    rates = _values(points, "learning_rate")
    if any(rate is not None for rate in rates):
        rate_scale, rate_ticks = _scale_for(rates, canvas.bottom, canvas.top)
        canvas.y_axis(rate_scale, rate_ticks, "learning rate", "right", LR_COLOUR)
        canvas.line(steps, rates, x, rate_scale, LR_COLOUR, width=1)
        legend.append(("learning rate", LR_COLOUR))
    canvas.line(steps, losses, x, loss_scale, LOSS_COLOUR, width=2)
    canvas.frame()
    canvas.legend(legend)
    return canvas.image

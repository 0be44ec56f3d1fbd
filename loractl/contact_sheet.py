"""A job's sample images as one PNG grid: rows are epochs, columns are prompts (Pillow only).

Each cell holds one sample scaled to fit ``CELL`` pixels (aspect kept, centred); the left column
names the epoch, the top row the prompt. A sample that is missing (not rendered, or rejected)
gets a grey cell saying so, so the grid always lines up and the eye can compare down a column.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

CELL = 192
PAD = 8
LABEL_WIDTH = 96
HEADER_HEIGHT = 40
BACKGROUND = (255, 255, 255)
MISSING = (200, 200, 200)
INK = (20, 20, 20)
MAX_LABEL_CHARS = 30


def sheet_size(rows: int, columns: int) -> tuple[int, int]:
    """(width, height) of a sheet with ``rows`` epochs and ``columns`` prompts."""
    return LABEL_WIDTH + columns * (CELL + PAD) + PAD, HEADER_HEIGHT + rows * (CELL + PAD) + PAD


def _fit(image: Image.Image) -> Image.Image:
    """Scale (up or down) to fit a CELL x CELL box, keeping the aspect ratio."""
    scale = CELL / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.convert("RGB").resize(size, Image.Resampling.LANCZOS)


def _short(text: str) -> str:
    return text if len(text) <= MAX_LABEL_CHARS else text[: MAX_LABEL_CHARS - 1] + "…"


def contact_sheet(
    samples: Mapping[tuple[int, int], Path], epochs: Sequence[int], prompts: Sequence[str], target: Path
) -> Path:
    """Write the grid of ``samples[(epoch, prompt_index)]`` to ``target`` (PNG) and return it."""
    sheet = Image.new("RGB", sheet_size(len(epochs), len(prompts)), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    for column, prompt in enumerate(prompts):
        x = LABEL_WIDTH + PAD + column * (CELL + PAD)
        draw.text((x, PAD), f"#{column} {_short(prompt)}", fill=INK, font=font)
    for row, epoch in enumerate(epochs):
        y = HEADER_HEIGHT + PAD + row * (CELL + PAD)
        draw.text((PAD, y + CELL // 2), f"epoch {epoch}", fill=INK, font=font)
        for column in range(len(prompts)):
            x = LABEL_WIDTH + PAD + column * (CELL + PAD)
            path = samples.get((epoch, column))
            if path is None:
                draw.rectangle((x, y, x + CELL - 1, y + CELL - 1), fill=MISSING)
                draw.text((x + PAD, y + CELL // 2), "missing", fill=INK, font=font)
                continue
            with Image.open(path) as image:
                fitted = _fit(image)
            sheet.paste(fitted, (x + (CELL - fitted.width) // 2, y + (CELL - fitted.height) // 2))
    target.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(target, format="PNG")
    return target

"""A dataset's images with their captions as one JPEG grid, for reviewing captions by eye (Pillow).

Each cell is the image's preview (made by the server's validation) scaled to fit ``CELL`` pixels,
with its path and as much of its caption as fits wrapped beneath it; an image without a preview or
without a caption says so in its cell, so a gap is visible rather than silently skipped.
"""

from __future__ import annotations

import io
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

CELL = 192
PAD = 8
CAPTION_LINES = 5
LINE_HEIGHT = 12
CHARS_PER_LINE = 32
COLUMNS = 6
BACKGROUND = (255, 255, 255)
MISSING = (200, 200, 200)
INK = (20, 20, 20)
WARN = (170, 30, 30)


@dataclass(frozen=True)
class CaptionedImage:
    path: str
    caption: str | None
    preview: bytes | None  # JPEG bytes, or None when the server has no preview


def caption_lines(caption: str | None) -> list[str]:
    """The caption wrapped to the cell, the last line cut with an ellipsis when it does not fit."""
    if not caption:
        return ["(no caption)"]
    lines = textwrap.wrap(caption, CHARS_PER_LINE) or [""]
    if len(lines) > CAPTION_LINES:
        lines = [*lines[: CAPTION_LINES - 1], lines[CAPTION_LINES - 1][: CHARS_PER_LINE - 1] + "…"]
    return lines


def sheet_size(count: int, columns: int = COLUMNS) -> tuple[int, int]:
    rows = max(1, -(-count // columns))
    cell_height = CELL + LINE_HEIGHT * (CAPTION_LINES + 1) + PAD
    return min(count, columns) * (CELL + PAD) + PAD, rows * (cell_height + PAD) + PAD


def caption_sheet(images: Sequence[CaptionedImage], destination: Path, columns: int = COLUMNS) -> Path:
    """Render the grid to ``destination`` (JPEG, or whatever its extension names) and return it."""
    width, height = sheet_size(len(images), columns)
    sheet = Image.new("RGB", (max(width, CELL + 2 * PAD), height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    cell_height = CELL + LINE_HEIGHT * (CAPTION_LINES + 1) + PAD
    for index, item in enumerate(images):
        x = PAD + (index % columns) * (CELL + PAD)
        y = PAD + (index // columns) * (cell_height + PAD)
        if item.preview is None:
            draw.rectangle((x, y, x + CELL, y + CELL), fill=MISSING)
            draw.text((x + PAD, y + CELL // 2), "no preview", fill=INK, font=font)
        else:
            with Image.open(io.BytesIO(item.preview)) as opened:
                preview = opened.convert("RGB")
            preview.thumbnail((CELL, CELL))
            sheet.paste(preview, (x + (CELL - preview.width) // 2, y + (CELL - preview.height) // 2))
        text_y = y + CELL + 2
        draw.text((x, text_y), item.path[-CHARS_PER_LINE:], fill=INK, font=font)
        for line_number, line in enumerate(caption_lines(item.caption), start=1):
            colour = WARN if not item.caption else INK
            draw.text((x, text_y + line_number * LINE_HEIGHT), line, fill=colour, font=font)
    destination.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(destination)
    return destination

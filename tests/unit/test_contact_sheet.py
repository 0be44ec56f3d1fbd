"""loractl's contact sheet: rows are epochs, columns prompts, every cell in its place."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from loractl.contact_sheet import CELL, HEADER_HEIGHT, LABEL_WIDTH, MISSING, PAD, contact_sheet, sheet_size


def _png(path: Path, size: tuple[int, int], color: tuple[int, int, int]) -> Path:
    Image.new("RGB", size, color).save(path)
    return path


def _cell_centre(row: int, column: int) -> tuple[int, int]:
    return LABEL_WIDTH + PAD + column * (CELL + PAD) + CELL // 2, HEADER_HEIGHT + PAD + row * (
        CELL + PAD
    ) + CELL // 2


def test_samples_land_in_their_epoch_row_and_prompt_column(tmp_path: Path) -> None:
    red, green, blue = (250, 0, 0), (0, 250, 0), (0, 0, 250)
    samples = {
        (1, 0): _png(tmp_path / "a.png", (64, 64), red),
        (1, 1): _png(tmp_path / "b.png", (64, 32), green),  # wide: scaled to fit, centred
        (3, 0): _png(tmp_path / "c.png", (512, 512), blue),
    }
    target = contact_sheet(samples, [1, 3], ["a cat", "a very long prompt " * 5], tmp_path / "sheet.png")

    with Image.open(target) as sheet:
        assert sheet.format == "PNG" and sheet.size == sheet_size(2, 2)
        rgb = sheet.convert("RGB")
        assert rgb.getpixel(_cell_centre(0, 0)) == red
        assert rgb.getpixel(_cell_centre(0, 1)) == green
        assert rgb.getpixel(_cell_centre(1, 0)) == blue
        x, y = _cell_centre(1, 1)
        assert rgb.getpixel((x - CELL // 2 + 2, y - CELL // 2 + 2)) == MISSING  # (3, 1) was never rendered
        label = rgb.crop((0, HEADER_HEIGHT, LABEL_WIDTH, HEADER_HEIGHT + CELL))
        assert label.getextrema() != ((255, 255), (255, 255), (255, 255))  # "epoch 1" is drawn


def test_sheet_size_grows_with_epochs_and_prompts() -> None:
    width, height = sheet_size(1, 1)
    assert sheet_size(3, 2) == (width + CELL + PAD, height + 2 * (CELL + PAD))

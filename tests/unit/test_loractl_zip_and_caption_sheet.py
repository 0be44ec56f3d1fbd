"""loractl's zip upload refuses hostile zips before connecting; the caption contact sheet."""

from __future__ import annotations

import contextlib
import io
import stat
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from loractl.caption_sheet import CELL, CaptionedImage, caption_lines, caption_sheet
from loractl.main import main as loractl
from loractl.zip_datasets import extract_dataset_zip


def run(*arguments: str) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = loractl(list(arguments))
    return code, err.getvalue()


def write_zip(path: Path, members: dict[str, bytes], symlinks: tuple[str, ...] = ()) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            info = zipfile.ZipInfo(name)
            if name in symlinks:
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, data)
    return path


@pytest.mark.parametrize(
    ("members", "symlinks", "reason"),
    [
        ({"../x.png": b"\x89PNG"}, (), "climbs out"),
        ({"10_a/a.png": b"\x89PNG", "10_a/b.png": b"/etc/passwd"}, ("10_a/b.png",), "symbolic link"),
        ({"a.png": b"\x89PNG"}, (), "give repeats"),
    ],
)
def test_a_refused_zip_is_a_usage_error_before_any_connection(
    tmp_path: Path, members: dict[str, bytes], symlinks: tuple[str, ...], reason: str
) -> None:
    archive = write_zip(tmp_path / "photos.zip", members, symlinks)
    # an endpoint nothing listens on: reaching it would be exit 5, not 2
    code, message = run(
        "datasets", "upload", str(archive), "--endpoint", "http://127.0.0.1:9", "--token", "t"
    )
    assert code == 2 and reason in message and "nothing was uploaded" in message, message


def test_a_flat_zip_is_unpacked_into_a_concept_folder(tmp_path: Path) -> None:
    archive = write_zip(tmp_path / "p.zip", {"photos/a.png": b"\x89PNG", "photos/a.txt": b"cat"})
    assert extract_dataset_zip(archive, tmp_path / "out", repeats=3, concept="cat") == 2
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.*")) == [
        "3_cat/a.png",
        "3_cat/a.txt",
    ]


def test_the_sheet_draws_every_image_with_a_gap_where_something_is_missing(tmp_path: Path) -> None:
    preview = io.BytesIO()
    Image.new("RGB", (256, 128), (200, 0, 0)).save(preview, "JPEG")
    images = [
        CaptionedImage("1_a/x.png", "sks cat, sitting", preview.getvalue()),
        CaptionedImage("1_a/y.png", None, None),
    ]
    sheet = caption_sheet(images, tmp_path / "sheet.jpg")
    with Image.open(sheet) as opened:
        assert opened.format == "JPEG" and opened.width >= 2 * CELL
        red = opened.convert("RGB").getpixel((8 + CELL // 2, 8 + CELL // 2))
        assert red[0] > 150 and red[1] < 80  # the first preview is drawn in its cell
    assert caption_lines(None) == ["(no caption)"]
    assert len(caption_lines("word " * 200)) == 5 and caption_lines("word " * 200)[-1].endswith("…")

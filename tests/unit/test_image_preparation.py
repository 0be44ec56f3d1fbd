"""The crop shared by the tasks function and `loractl datasets prepare`: geometry, smart choice, safety."""

from __future__ import annotations

import io

import pytest
from PIL import Image, ImageDraw, ImageStat

from functions.domain.dataset_preparation import CropMode, CropSpec, output_name, side_problem
from functions.domain.image_preparation import ImageProblem, crop_box, prepare_image, smart_offset


def encode(image: Image.Image, fmt: str = "PNG", **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def decode(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data))


@pytest.mark.parametrize(
    ("size", "aspect", "offset", "box"),
    [
        ((300, 200), 1.0, 0.5, (50, 0, 250, 200)),
        ((300, 200), 1.0, 0.0, (0, 0, 200, 200)),
        ((300, 200), 1.0, 1.0, (100, 0, 300, 200)),
        ((200, 300), 1.0, 0.5, (0, 50, 200, 250)),
        ((400, 400), 2.0, 0.5, (0, 100, 400, 300)),
        ((512, 512), 1.0, 0.5, (0, 0, 512, 512)),
    ],
)
def test_crop_box_is_the_largest_box_of_the_aspect(
    size: tuple[int, int], aspect: float, offset: float, box: tuple[int, int, int, int]
) -> None:
    assert crop_box(size, aspect, offset) == box


def test_smart_crop_keeps_the_detailed_side_and_center_keeps_the_middle() -> None:
    image = Image.new("RGB", (600, 200), "white")
    draw = ImageDraw.Draw(image)
    for x in range(420, 600, 12):  # detail only on the right
        draw.line([(x, 0), (x, 200)], fill="black", width=3)
    assert smart_offset(image, 1.0) > 0.8
    smart = decode(prepare_image(encode(image), "a.png", CropSpec(64, 64, CropMode.SMART)))
    center = decode(prepare_image(encode(image), "a.png", CropSpec(64, 64, CropMode.CENTER)))
    assert smart.size == center.size == (64, 64)
    darkness = lambda im: ImageStat.Stat(im.convert("L")).mean[0]  # noqa: E731
    assert darkness(smart) < darkness(center)  # the smart crop holds the stripes
    assert smart_offset(Image.new("RGB", (600, 200), "white"), 1.0) == 0.5  # no detail: the centre


def test_formats_are_kept_transparency_too_and_bmp_becomes_png() -> None:
    rgba = Image.new("RGBA", (100, 80), (10, 20, 30, 128))
    assert decode(prepare_image(encode(rgba), "a.png", CropSpec(64, 64))).mode == "RGBA"
    assert (
        decode(prepare_image(encode(rgba.convert("RGB"), "JPEG"), "a.jpg", CropSpec(64, 64))).format == "JPEG"
    )
    assert decode(prepare_image(encode(rgba, "WEBP"), "a.webp", CropSpec(64, 64))).format == "WEBP"
    assert (
        decode(prepare_image(encode(rgba.convert("RGB"), "BMP"), "a.bmp", CropSpec(64, 64))).format == "PNG"
    )
    assert output_name("10_cat/a.BMP") == "10_cat/a.png" and output_name("10_cat/a.jpg") == "10_cat/a.jpg"


def test_small_images_are_cropped_not_enlarged_unless_asked() -> None:
    small = encode(Image.new("RGB", (100, 50)))
    assert decode(prepare_image(small, "a.png", CropSpec(512, 512))).size == (50, 50)
    assert decode(prepare_image(small, "a.png", CropSpec(512, 512, upscale=True))).size == (512, 512)
    assert decode(prepare_image(small, "a.png", CropSpec(96, 48))).size == (
        96,
        48,
    )  # same aspect: resized down


def test_the_exif_orientation_of_phone_photos_is_applied() -> None:
    portrait_stored_as_landscape = Image.new("RGB", (200, 100))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise when shown
    data = encode(portrait_stored_as_landscape, "JPEG", exif=exif)
    assert decode(prepare_image(data, "a.jpg", CropSpec(64, 128))).size == (64, 128)


@pytest.mark.parametrize("data", [b"", b"not an image", b"\x89PNG\r\n\x1a\n" + b"\x00" * 50])
def test_undecodable_bytes_are_a_clear_problem(data: bytes) -> None:
    with pytest.raises(ImageProblem, match="not a decodable image"):
        prepare_image(data, "a.png", CropSpec(64, 64))


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_decompression_bombs_are_refused_before_decoding() -> None:
    bomb = encode(Image.new("1", (13_000, 13_000)))  # 169 MP of 1-bit pixels: a few kB compressed
    assert len(bomb) < 100_000
    with pytest.raises(ImageProblem, match="more than"):
        prepare_image(bomb, "a.png", CropSpec(64, 64))


@pytest.mark.parametrize(
    ("value", "ok"), [(64, True), (512, True), (4096, True), (60, False), (100, False), (4104, False)]
)
def test_target_sides(value: int, ok: bool) -> None:
    assert (side_problem("width", value) is None) is ok

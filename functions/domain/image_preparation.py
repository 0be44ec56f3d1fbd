"""Crop and resize one training image to a target size: the dataset "prepare" step.

One implementation for both places it runs: the tasks function (``POST /datasets/{id}/crop``)
and ``loractl datasets prepare`` before an upload, so a dataset prepared locally and one cropped
by the service come out the same. It needs Pillow, which the tasks function bundles and the CLI
installs; nothing else in the domain imports this module.

``center`` keeps the middle of the image. ``smart`` keeps the window with the most edge detail
(subjects are where the edges are; plain backgrounds have few), found on a small greyscale copy
so it costs a few milliseconds per image.
"""

from __future__ import annotations

import io

from PIL import Image, ImageFilter, ImageOps, ImageStat

from functions.domain.dataset_preparation import CropMode, CropSpec, output_name

# Decompression-bomb guard (under Pillow's own 178 MP refusal): far more than training needs.
MAX_SOURCE_PIXELS = 150_000_000
ANALYSIS_SIDE = 256  # the long side of the copy the smart crop looks at
SMART_POSITIONS = 33  # candidate windows along the long axis
JPEG_QUALITY = 95
OUTPUT_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "PNG"}


class ImageProblem(ValueError):
    """The image cannot be prepared (not decodable, too large); the message says why."""


def crop_box(size: tuple[int, int], aspect: float, offset: float) -> tuple[int, int, int, int]:
    """The largest box of ``aspect`` (width / height) inside ``size``, slid by ``offset`` (0..1)."""
    width, height = size
    if width / height > aspect:  # too wide: cut the sides
        box_width = max(1, round(height * aspect))
        left = round((width - box_width) * offset)
        return left, 0, left + box_width, height
    box_height = max(1, round(width / aspect))
    top = round((height - box_height) * offset)
    return 0, top, width, top + box_height


def smart_offset(image: Image.Image, aspect: float) -> float:
    """Where along its long axis the window with the most edge energy starts (0..1)."""
    small = image.convert("L")
    small.thumbnail((ANALYSIS_SIDE, ANALYSIS_SIDE))
    edges = small.filter(ImageFilter.FIND_EDGES)
    # The filter reads past the border as black: drop that frame or it looks like detail.
    edges = edges.crop((1, 1, max(2, edges.width - 1), max(2, edges.height - 1)))
    best_offset, best_energy = 0.5, -1.0
    for step in range(SMART_POSITIONS):
        offset = step / (SMART_POSITIONS - 1)
        energy = float(ImageStat.Stat(edges.crop(crop_box(edges.size, aspect, offset))).sum[0])
        # Ties (e.g. a uniform image) keep the centre rather than the first window.
        if energy > best_energy or (energy == best_energy and abs(offset - 0.5) < abs(best_offset - 0.5)):
            best_offset, best_energy = offset, energy
    return best_offset


def open_image(data: bytes) -> Image.Image:
    """Decode, refusing decompression bombs, and apply the EXIF orientation (phone photos)."""
    try:
        with Image.open(io.BytesIO(data)) as probe:
            width, height = probe.size
            if width * height > MAX_SOURCE_PIXELS:
                raise ImageProblem(f"{width}x{height} pixels is more than {MAX_SOURCE_PIXELS:,}")
            probe.load()
            image = ImageOps.exif_transpose(probe)
    except ImageProblem:
        raise
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise ImageProblem(f"not a decodable image ({error})") from error
    return image.convert("RGBA" if image.mode in ("RGBA", "LA", "P") else "RGB")


def prepare_image(data: bytes, filename: str, spec: CropSpec) -> bytes:
    """The image cropped to the spec's aspect, resized to its size, encoded like the original."""
    image = open_image(data)
    aspect = spec.width / spec.height
    offset = smart_offset(image, aspect) if spec.mode is CropMode.SMART else 0.5
    cropped = image.crop(crop_box(image.size, aspect, offset))
    if spec.upscale or cropped.width >= spec.width:
        cropped = cropped.resize((spec.width, spec.height), Image.Resampling.LANCZOS)
    suffix = "." + output_name(filename).rsplit(".", 1)[-1].lower()
    image_format = OUTPUT_FORMATS.get(suffix, "PNG")
    if image_format == "JPEG" and cropped.mode != "RGB":
        cropped = cropped.convert("RGB")
    buffer = io.BytesIO()
    options = {"quality": JPEG_QUALITY} if image_format in ("JPEG", "WEBP") else {}
    cropped.save(buffer, format=image_format, **options)
    return buffer.getvalue()

"""Full decoding of dataset files: an image must decode to its last pixel, a caption must be text.

The first bytes of a file (checked when a dataset is completed) prove little: a PNG signature
followed by random bytes passes that check and then fails inside a billed training job. Here
every image is decoded completely, as the trainer will. Needs Pillow, which only the tasks
function bundles (the API function never imports this module).
"""

from __future__ import annotations

import io
import warnings

from PIL import Image

from functions.domain.dataset_rules import CAPTION_EXTENSION

# Pillow's format names for the dataset rules' image extensions.
FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP"}


def image_problem(path: str, data: bytes) -> str | None:
    """Why an image file is unusable (does not decode completely, or is another format), or None."""
    suffix = "." + path.rsplit(".", 1)[-1].lower()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                image.load()  # decodes every pixel: truncated or corrupt data raises here
                found = image.format
    except (
        OSError,
        ValueError,
        SyntaxError,
        Image.DecompressionBombWarning,
        Image.DecompressionBombError,
    ) as e:
        return f"{path}: the image does not decode ({type(e).__name__}: {e})"
    expected = FORMATS.get(suffix)
    if expected is not None and found != expected:
        return f"{path}: the file is {found}, not {expected} as its extension says"
    return None


def decoded_bytes(path: str, data: bytes) -> int:
    """The memory a full decode of this file takes (width x height x bands, read from the header
    alone, so nothing is decoded); 0 for a caption, or a header that does not parse (the decode
    then reports why)."""
    if path.lower().endswith(CAPTION_EXTENSION):
        return 0
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the decode reports it
            with Image.open(io.BytesIO(data)) as image:
                return image.width * image.height * len(image.getbands())
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return 0


def caption_problem(path: str, data: bytes) -> str | None:
    """Why a caption file is unusable (not UTF-8 text, or has NUL bytes), or None."""
    if b"\x00" in data:
        return f"{path}: the caption contains NUL bytes"
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as error:
        return f"{path}: the caption is not UTF-8 text (byte {error.start})"
    return None


def file_problem(path: str, data: bytes) -> str | None:
    """The problem of one dataset file, by its type, or None when it is usable."""
    if path.lower().endswith(CAPTION_EXTENSION):
        return caption_problem(path, data)
    return image_problem(path, data)


# Previews for caption review (GET /datasets/{id}/files): small enough that a page of 100 is a
# few megabytes, big enough to recognise the subject on a contact sheet.
THUMBNAIL_MAX_SIDE = 256
THUMBNAIL_QUALITY = 80


def thumbnail_jpeg(data: bytes, max_side: int = THUMBNAIL_MAX_SIDE) -> bytes:
    """A JPEG preview at most ``max_side`` pixels on its longer side (aspect kept).

    Called after ``image_problem`` found the image decodes; ``draft`` lets JPEG decoding skip
    straight to a reduced scale, so the second decode costs a fraction of the first.
    """
    with Image.open(io.BytesIO(data)) as image:
        image.draft("RGB", (max_side, max_side))
        preview = image.convert("RGB")
        preview.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
        out = io.BytesIO()
        preview.save(out, "JPEG", quality=THUMBNAIL_QUALITY, optimize=True)
    return out.getvalue()

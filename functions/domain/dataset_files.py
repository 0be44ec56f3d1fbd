"""Caption review: the shape of ``GET /datasets/{id}/files`` (image paths, captions, previews).

A page lists a ready dataset's images in path order, each with its caption (``with_captions``),
a presigned link to the validated file and one to the JPEG preview the validation made (null for
a dataset validated before previews existed, or made by a crop, which writes files directly).
"""

from __future__ import annotations

from pydantic import BaseModel, Field

MAX_FILES_PAGE = 100
DEFAULT_FILES_PAGE = 50


class DatasetFileView(BaseModel):
    path: str = Field(description="<repeats>_<concept>/<image>")
    size_bytes: int
    has_caption: bool = Field(description="a .txt caption sits next to the image")
    caption: str | None = Field(
        default=None, description="the caption's text (with_captions=true only; null when there is none)"
    )
    thumbnail_url: str | None = Field(
        default=None, description="presigned GET of a JPEG preview (at most 256 px), when one was made"
    )
    download_url: str = Field(description="presigned GET of the validated image")


class DatasetFilePage(BaseModel):
    dataset_id: str
    items: list[DatasetFileView] = Field(description="images in path order")
    next_token: str | None = Field(default=None, description="the next page; null on the last one")

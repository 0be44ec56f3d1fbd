"""Uploads straight to S3 through presigned URLs: model parts in parallel, dataset files in parallel.

Each part or file is retried on its own (a dropped connection costs one part, not the upload).
Model uploads are resumable: the parts already sent are remembered in
``<file>.loractl-upload.json`` next to the file, so re-running the same command after an
interruption continues the same multipart upload while its URLs are still valid.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

PART_ATTEMPTS = 4
UPLOAD_TIMEOUT = httpx.Timeout(300.0, connect=15.0)
# As many requests in flight as `aws s3 cp` keeps (10), near enough; parts are streamed from
# the file, so memory stays at a few chunks per worker whatever the part size.
DEFAULT_WORKERS = 8
STREAM_CHUNK_BYTES = 1024 * 1024
Advance = Callable[[int], None]


class TransferError(Exception):
    """A part or file could not be uploaded after all retries."""


@dataclass(frozen=True)
class PartTarget:
    part_number: int
    url: str
    offset: int
    length: int


@dataclass(frozen=True)
class FileTarget:
    path: Path
    relative: str
    url: str
    headers: dict[str, str]


Body = bytes | Callable[[], Iterator[bytes]]


def _put_with_retries(
    http: httpx.Client, url: str, body: Body, headers: dict[str, str], what: str
) -> httpx.Response:
    """PUT ``body`` (bytes, or a factory of chunk iterators so a retry can start over)."""
    last_error = ""
    for attempt in range(1, PART_ATTEMPTS + 1):
        try:
            content = body if isinstance(body, bytes) else body()
            response = http.put(url, content=content, headers=headers)
            if response.status_code < 300:
                return response
            last_error = f"HTTP {response.status_code}: {response.text[:300]}"
            if response.status_code in (400, 403) and "expired" in response.text.lower():
                break  # an expired URL does not heal; the caller has to ask for new ones
        except httpx.TransportError as error:
            last_error = str(error)
        time.sleep(min(8.0, 0.5 * 2**attempt))
    raise TransferError(f"{what} failed after {PART_ATTEMPTS} attempts: {last_error}")


def plan_parts(parts: Sequence[dict[str, Any]], part_size: int, file_size: int) -> list[PartTarget]:
    """Byte ranges of each presigned part (part N covers [(N-1)*size, N*size))."""
    targets = []
    for part in parts:
        number = int(part["part_number"])
        offset = (number - 1) * part_size
        targets.append(
            PartTarget(number, str(part["url"]), offset, max(0, min(part_size, file_size - offset)))
        )
    return targets


class ResumeState:
    """The ETags of parts already uploaded for one (file, upload id)."""

    def __init__(self, file: Path, upload_id: str) -> None:
        self._path = file.with_name(file.name + ".loractl-upload.json")
        self.upload_id = upload_id
        self.etags: dict[int, str] = {}
        if self._path.is_file():
            saved = json.loads(self._path.read_text(encoding="utf-8"))
            if saved.get("upload_id") == upload_id:
                self.etags = {int(k): v for k, v in saved.get("etags", {}).items()}

    @staticmethod
    def pending(file: Path) -> dict[str, Any] | None:
        """The saved state of an interrupted upload of ``file`` (model id, upload id), if any."""
        path = file.with_name(file.name + ".loractl-upload.json")
        if not path.is_file():
            return None
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return data

    def record(self, number: int, etag: str, extra: dict[str, Any]) -> None:
        self.etags[number] = etag
        payload = {"upload_id": self.upload_id, "etags": self.etags, **extra}
        self._path.write_text(json.dumps(payload), encoding="utf-8")

    def clear(self) -> None:
        self._path.unlink(missing_ok=True)


def read_range(file: Path, offset: int, length: int) -> Iterator[bytes]:
    """The bytes [offset, offset + length) of ``file``, in chunks."""
    with file.open("rb") as handle:
        handle.seek(offset)
        left = length
        while left > 0:
            chunk = handle.read(min(STREAM_CHUNK_BYTES, left))
            if not chunk:
                raise TransferError(f"{file} is shorter than expected (it changed during the upload?)")
            left -= len(chunk)
            yield chunk


def upload_parts(
    file: Path,
    targets: Sequence[PartTarget],
    advance: Advance,
    resume: ResumeState,
    resume_extra: dict[str, Any],
    workers: int = DEFAULT_WORKERS,
) -> list[dict[str, Any]]:
    """PUT every part not uploaded yet; returns ``[{part_number, etag}]`` sorted by part."""

    def send(target: PartTarget, http: httpx.Client) -> tuple[int, str]:
        # A presigned UploadPart needs Content-Length (no chunked encoding): stated explicitly.
        headers = {"Content-Length": str(target.length)}
        body = lambda: read_range(file, target.offset, target.length)  # noqa: E731
        response = _put_with_retries(http, target.url, body, headers, f"part {target.part_number}")
        etag = response.headers.get("ETag", "").strip()
        if not etag:
            raise TransferError(
                f"part {target.part_number}: S3 returned no ETag (is the bucket CORS exposing it?)"
            )
        advance(target.length)
        return target.part_number, etag

    for number in resume.etags:
        done = next((t for t in targets if t.part_number == number), None)
        if done is not None:
            advance(done.length)
    todo = [t for t in targets if t.part_number not in resume.etags]
    with httpx.Client(timeout=UPLOAD_TIMEOUT) as http, ThreadPoolExecutor(workers) as pool:
        futures = [pool.submit(send, target, http) for target in todo]
        for future in as_completed(futures):
            number, etag = future.result()
            resume.record(number, etag, resume_extra)
    return [{"part_number": n, "etag": e} for n, e in sorted(resume.etags.items())]


def upload_files(targets: Sequence[FileTarget], advance: Advance, workers: int = DEFAULT_WORKERS) -> None:
    """PUT every dataset file to its presigned URL, in parallel."""

    def send(target: FileTarget, http: httpx.Client) -> None:
        data = target.path.read_bytes()
        _put_with_retries(http, target.url, data, target.headers, target.relative)
        advance(len(data))

    with httpx.Client(timeout=UPLOAD_TIMEOUT) as http, ThreadPoolExecutor(workers) as pool:
        for future in as_completed([pool.submit(send, target, http) for target in targets]):
            future.result()


def download(url: str, destination: Path, advance: Advance, set_total: Callable[[int], None]) -> Path:
    """Stream a presigned GET to ``destination`` (written to a temporary name, then renamed)."""
    temporary = destination.with_name(destination.name + ".part")
    destination.parent.mkdir(parents=True, exist_ok=True)
    with httpx.stream("GET", url, timeout=UPLOAD_TIMEOUT, follow_redirects=True) as response:
        if response.status_code >= 300:
            raise TransferError(f"download failed: HTTP {response.status_code}: {response.read()[:300]!r}")
        set_total(int(response.headers.get("Content-Length") or 0))
        with temporary.open("wb") as handle:
            for chunk in response.iter_bytes(1024 * 1024):
                handle.write(chunk)
                advance(len(chunk))
    temporary.replace(destination)
    return destination

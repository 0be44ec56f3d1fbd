"""S3 access: presigned uploads and downloads, object checks, copies and deletes."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from functions.adapters.aws_clients import s3_client

# S3 multipart limits (https://docs.aws.amazon.com/AmazonS3/latest/userguide/qfacts.html): parts of
# 5 MiB to 5 GiB, at most 10,000 parts, objects up to 5 TiB. At the 32 GiB model limit
# (settings.model_import_max_bytes) 64 MiB parts make 512 parts, far inside the limit.
MIN_PART_SIZE = 64 * 1024**2
MAX_PARTS = 10_000


def choose_part_size(size_bytes: int) -> int:
    """64 MiB parts, doubled until the upload fits S3's 10,000-part limit."""
    part = MIN_PART_SIZE
    while math.ceil(size_bytes / part) > MAX_PARTS:
        part *= 2
    return part


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size_bytes: int


class ObjectStorage:
    """One bucket, addressed by keys from ``functions.domain.storage_layout``."""

    def __init__(self, bucket: str, presign_expiry_seconds: int) -> None:
        self.bucket = bucket
        self.expiry = presign_expiry_seconds

    @property
    def _s3(self) -> Any:
        return s3_client()

    # -- uploads
    def start_multipart_upload(self, key: str) -> str:
        response = self._s3.create_multipart_upload(
            Bucket=self.bucket, Key=key, ContentType="application/octet-stream"
        )
        return str(response["UploadId"])

    def presign_upload_part(self, key: str, upload_id: str, part_number: int) -> str:
        return str(
            self._s3.generate_presigned_url(
                "upload_part",
                Params={"Bucket": self.bucket, "Key": key, "UploadId": upload_id, "PartNumber": part_number},
                ExpiresIn=self.expiry,
            )
        )

    def complete_multipart_upload(self, key: str, upload_id: str, parts: list[tuple[int, str]]) -> None:
        self._s3.complete_multipart_upload(
            Bucket=self.bucket,
            Key=key,
            UploadId=upload_id,
            MultipartUpload={"Parts": [{"PartNumber": n, "ETag": etag} for n, etag in sorted(parts)]},
        )

    def upload_part(self, key: str, upload_id: str, part_number: int, data: bytes) -> str:
        """Upload one part from the server side (imports); returns its ETag."""
        response = self._s3.upload_part(
            Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=part_number, Body=data
        )
        return str(response["ETag"])

    def abort_multipart_upload(self, key: str, upload_id: str) -> None:
        try:
            self._s3.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except ClientError as error:
            if error.response["Error"]["Code"] not in ("NoSuchUpload", "404"):
                raise

    def presign_put(self, key: str, size_bytes: int) -> str:
        """A PUT bound to the exact key and length (Content-Length is a signed header)."""
        return str(
            self._s3.generate_presigned_url(
                "put_object",
                Params={"Bucket": self.bucket, "Key": key, "ContentLength": size_bytes},
                ExpiresIn=self.expiry,
            )
        )

    def presign_get(self, key: str, filename: str) -> str:
        return str(
            self._s3.generate_presigned_url(
                "get_object",
                Params={
                    "Bucket": self.bucket,
                    "Key": key,
                    "ResponseContentDisposition": f'attachment; filename="{filename}"',
                },
                ExpiresIn=self.expiry,
            )
        )

    # -- reads
    def object_size(self, key: str) -> int | None:
        try:
            return int(self._s3.head_object(Bucket=self.bucket, Key=key)["ContentLength"])
        except ClientError as error:
            if error.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
                return None
            raise

    def read_range(self, key: str, start: int, length: int) -> bytes:
        if length <= 0:
            return b""
        response = self._s3.get_object(
            Bucket=self.bucket, Key=key, Range=f"bytes={start}-{start + length - 1}"
        )
        return bytes(response["Body"].read())

    def read_bytes(self, key: str) -> bytes | None:
        """A whole (small) object, or None when it does not exist."""
        try:
            return bytes(self._s3.get_object(Bucket=self.bucket, Key=key)["Body"].read())
        except ClientError as error:
            if error.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
                return None
            raise

    def write_bytes(self, key: str, data: bytes) -> None:
        self._s3.put_object(Bucket=self.bucket, Key=key, Body=data)

    def read_json(self, key: str) -> dict[str, Any] | None:
        try:
            body = self._s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except ClientError as error:
            if error.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        try:
            data = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return None
        return data if isinstance(data, dict) else None

    def write_json(self, key: str, data: Any) -> None:
        self._s3.put_object(
            Bucket=self.bucket, Key=key, Body=json.dumps(data).encode(), ContentType="application/json"
        )

    def list_objects(self, prefix: str) -> dict[str, ObjectInfo]:
        """Every object under a prefix, keyed by the path relative to the prefix."""
        found: dict[str, ObjectInfo] = {}
        paginator = self._s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                found[item["Key"][len(prefix) :]] = ObjectInfo(item["Key"], int(item["Size"]))
        return found

    # -- writes
    def copy(self, source_key: str, target_key: str) -> None:
        self._s3.copy_object(
            Bucket=self.bucket, Key=target_key, CopySource={"Bucket": self.bucket, "Key": source_key}
        )

    def delete(self, key: str) -> None:
        self._s3.delete_object(Bucket=self.bucket, Key=key)

    def delete_prefix(self, prefix: str) -> int:
        keys = [info.key for info in self.list_objects(prefix).values()]
        for start in range(0, len(keys), 1000):
            batch = keys[start : start + 1000]
            self._s3.delete_objects(
                Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True}
            )
        return len(keys)

"""Persistence of the emulated AWS state in the local data directory.

moto keeps everything in memory, so the runtime mirrors it to disk:

    <data-dir>/state/dynamodb/<table>.json   every item, in DynamoDB's typed JSON
    <data-dir>/state/s3/index.json           key -> {etag, file, content_type, metadata}
    <data-dir>/state/s3/objects/<sha256>     object bodies, one file per key

A snapshot is taken after every API request that may change state (before its response is
sent, so a completed upload is on disk when the client is told it is done), after every job
event, every few seconds in the background (objects written straight to presigned URLs),
and on shutdown. S3 objects are copied incrementally (by ETag). Unfinished multipart uploads
are not kept: a restarted runtime forgets them and the client starts that upload again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import threading
from pathlib import Path
from typing import Any

from local_runtime.aws_emulator import ResourceNames

logger = logging.getLogger("local_runtime.state")

BATCH_WRITE_LIMIT = 25
COPY_CHUNK_BYTES = 8 * 1024**2


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_bytes(data)
    temporary.replace(path)


def _stream_atomically(path: Path, body: Any) -> None:
    """Copy a streaming body to ``path`` in chunks: a multi-GB model never sits in memory twice."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    with temporary.open("wb") as handle:
        shutil.copyfileobj(body, handle, COPY_CHUNK_BYTES)
    temporary.replace(path)


class StateSnapshot:
    """Saves and restores the tables and the bucket of one local runtime."""

    def __init__(self, folder: Path, names: ResourceNames, dynamodb: Any, s3: Any) -> None:
        self._folder = folder
        self._names = names
        self._dynamodb = dynamodb
        self._s3 = s3
        self._lock = threading.Lock()
        self._index: dict[str, dict[str, Any]] = self._read_index()

    @property
    def _tables_dir(self) -> Path:
        return self._folder / "dynamodb"

    @property
    def _objects_dir(self) -> Path:
        return self._folder / "s3" / "objects"

    @property
    def _index_file(self) -> Path:
        return self._folder / "s3" / "index.json"

    def _read_index(self) -> dict[str, dict[str, Any]]:
        if not self._index_file.is_file():
            return {}
        data: dict[str, dict[str, Any]] = json.loads(self._index_file.read_text(encoding="utf-8"))
        return data

    # --- save --------------------------------------------------------------------------------

    def save(self) -> None:
        """Mirror the current tables and bucket to disk (serialised: one snapshot at a time)."""
        with self._lock:
            for table in (self._names.table, self._names.idempotency_table):
                self._save_table(table)
            self._save_bucket()

    def _save_table(self, table: str) -> None:
        items: list[dict[str, Any]] = []
        for page in self._dynamodb.get_paginator("scan").paginate(TableName=table):
            items.extend(page.get("Items", []))
        _write_atomically(self._tables_dir / f"{table}.json", json.dumps(items).encode("utf-8"))

    def _save_bucket(self) -> None:
        current: dict[str, str] = {}
        for page in self._s3.get_paginator("list_objects_v2").paginate(Bucket=self._names.bucket):
            current.update({item["Key"]: item["ETag"] for item in page.get("Contents", [])})
        for key, etag in current.items():
            if self._index.get(key, {}).get("etag") != etag:
                self._save_object(key)
        for key in set(self._index) - set(current):
            (self._objects_dir / self._index.pop(key)["file"]).unlink(missing_ok=True)
        _write_atomically(self._index_file, json.dumps(self._index).encode("utf-8"))

    def _save_object(self, key: str) -> None:
        try:
            response = self._s3.get_object(Bucket=self._names.bucket, Key=key)
        except self._s3.exceptions.NoSuchKey:  # deleted since it was listed
            return
        file_name = hashlib.sha256(key.encode("utf-8")).hexdigest()
        _stream_atomically(self._objects_dir / file_name, response["Body"])
        self._index[key] = {
            "etag": response["ETag"],
            "file": file_name,
            "content_type": response.get("ContentType", "binary/octet-stream"),
            "metadata": response.get("Metadata", {}),
        }

    # --- restore -----------------------------------------------------------------------------

    def restore(self) -> tuple[int, int]:
        """Load the saved items and objects into the (fresh) emulator; returns (items, objects)."""
        with self._lock:
            items = sum(self._restore_table(t) for t in (self._names.table, self._names.idempotency_table))
            objects = self._restore_bucket()
            return items, objects

    def _restore_table(self, table: str) -> int:
        path = self._tables_dir / f"{table}.json"
        if not path.is_file():
            return 0
        items = json.loads(path.read_text(encoding="utf-8"))
        for start in range(0, len(items), BATCH_WRITE_LIMIT):
            batch = [{"PutRequest": {"Item": item}} for item in items[start : start + BATCH_WRITE_LIMIT]]
            self._dynamodb.batch_write_item(RequestItems={table: batch})
        return len(items)

    def _restore_bucket(self) -> int:
        restored = 0
        for key, entry in list(self._index.items()):
            body_path = self._objects_dir / entry["file"]
            if not body_path.is_file():
                logger.warning("snapshot of s3://%s/%s is missing; dropped", self._names.bucket, key)
                self._index.pop(key)
                continue
            with body_path.open("rb") as body:
                self._s3.put_object(
                    Bucket=self._names.bucket,
                    Key=key,
                    Body=body,
                    ContentType=entry["content_type"],
                    Metadata=entry["metadata"],
                )
            head = self._s3.head_object(Bucket=self._names.bucket, Key=key)
            entry["etag"] = head["ETag"]  # multipart ETags become single-part ones on restore
            restored += 1
        return restored


class PeriodicSnapshots:
    """Takes a snapshot every ``interval`` seconds, and at once when asked."""

    def __init__(self, snapshot: StateSnapshot, interval: float) -> None:
        self._snapshot = snapshot
        self._interval = interval
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="state-snapshots", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def save_now(self) -> None:
        try:
            self._snapshot.save()
        except Exception:
            logger.exception("saving the local state failed")

    def _loop(self) -> None:
        while not self._stopped.wait(self._interval):
            self.save_now()

    def stop(self) -> None:
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)
        self.save_now()

"""The data path: loractl uploads into the local runtime against plain boto3 uploads of the same bytes.

Two workloads, each measured in the same run on the same emulated bucket:

* a dataset of N small images (real PNGs, ~50 KB) with their captions: ``loractl datasets
  upload`` (declare, presigned PUTs in parallel, complete) against boto3 ``upload_file`` of every
  file from 10 threads (what ``aws s3 cp --recursive`` does with its default 10 requests);
* one model file (a valid ``.safetensors`` of the given size): ``loractl models upload``
  (presigned multipart, server-chosen 64 MiB parts, parallel parts, complete with its header
  check) against boto3 ``upload_file`` with the default TransferConfig (8 MiB parts, 10 threads:
  ``aws s3 cp``'s defaults).

Two ratios (boto3 time / loractl time; >= 1.0 means loractl is at least as fast): the transfer
alone (loractl's upload calls, timed inside the CLI run, against boto3's upload), and end to end:
loractl's whole command, which also declares the files and completes them (every object's size
and type checked, the safetensors header parsed) and waits for the local runtime's disk mirror
of the bucket, against boto3's upload followed by the same mirror. loractl runs in-process (its
interpreter start, ~0.3 s, is not counted).

    .venv/bin/python benchmarks/bench_data_path.py [--images 1000] [--model-mb 2048] [--workers 8]
"""

from __future__ import annotations

import sys
from pathlib import Path as _Path

sys.path.insert(0, str(_Path(__file__).resolve().parents[1]))

import argparse
import contextlib
import io
import json
import os
import struct
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
from boto3.s3.transfer import TransferConfig

from local_runtime.aws_emulator import FAKE_ACCESS_KEY_ID, FAKE_SECRET_ACCESS_KEY, ResourceNames
from local_runtime.runtime import LocalRuntime, LocalRuntimeOptions, RuntimeInfo
from loractl import commands
from loractl.main import main as loractl
from loractl.uploads import DEFAULT_WORKERS

BASELINE_THREADS = 10  # aws-cli's default max_concurrent_requests
CHUNK = 64 * 1024**2


def write_dataset(root: Path, images: int) -> int:
    """``<root>/10_bench/img_<i>.png`` (128x128 noise, ~50 KB) + captions; returns total bytes."""
    import numpy as np
    from PIL import Image

    folder = root / "10_bench"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(images):
        pixels = rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"img_{i:05d}.png")
        (folder / f"img_{i:05d}.txt").write_text(f"bench, a photo of subject {i}, high detail")
    return sum(p.stat().st_size for p in folder.iterdir())


def write_safetensors(path: Path, size_bytes: int) -> int:
    """A valid safetensors file (one U8 tensor of random bytes) of about ``size_bytes``."""
    payload = size_bytes - 256
    header = json.dumps({"weights": {"dtype": "U8", "shape": [payload], "data_offsets": [0, payload]}})
    header_bytes = header.encode().ljust(256 - 8, b" ")
    with path.open("wb") as handle:
        handle.write(struct.pack("<Q", len(header_bytes)))
        handle.write(header_bytes)
        block = os.urandom(CHUNK)
        left = payload
        while left:
            handle.write(block[: min(CHUNK, left)])
            left -= min(CHUNK, left)
    return path.stat().st_size


class TransferClock:
    """Times loractl's transfer phase (its upload_files/upload_parts calls) inside a CLI run."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def wrap(self, function: Callable[..., Any]) -> Callable[..., Any]:
        def timed_call(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - started

        return timed_call


@contextlib.contextmanager
def transfer_clock() -> Iterator[TransferClock]:
    clock = TransferClock()
    originals = commands.upload_files, commands.upload_parts
    commands.upload_files, commands.upload_parts = (clock.wrap(f) for f in originals)  # type: ignore[assignment]
    try:
        yield clock
    finally:
        commands.upload_files, commands.upload_parts = originals


def run_cli(info: RuntimeInfo, *arguments: str) -> dict[str, Any]:
    out = io.StringIO()
    connection = ["--endpoint", info.api_url, "--token", info.tokens["local"], "--json"]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()) as err:
        code = loractl([*arguments, *connection])
    if code != 0:
        raise RuntimeError(f"loractl {' '.join(arguments)} exited {code}: {err.getvalue()[-2000:]}")
    result: dict[str, Any] = json.loads(out.getvalue())
    return result


def timed(action: Callable[[], Any]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def measure(runtime: LocalRuntime, work: Path, images: int, model_mb: int, workers: int) -> dict[str, Any]:
    info = runtime.info
    assert info is not None
    s3 = boto3.client(
        "s3",
        endpoint_url=info.aws_endpoint_url,
        region_name="us-east-1",
        aws_access_key_id=FAKE_ACCESS_KEY_ID,
        aws_secret_access_key=FAKE_SECRET_ACCESS_KEY,
    )
    bucket = ResourceNames().bucket
    snapshot = runtime.save_state
    results: dict[str, Any] = {}

    if images:
        dataset = work / "dataset"
        total = write_dataset(dataset, images)
        files = sorted(p for p in dataset.rglob("*") if p.is_file())

        def baseline_dataset() -> None:
            with ThreadPoolExecutor(BASELINE_THREADS) as pool:
                list(
                    pool.map(
                        lambda p: s3.upload_file(str(p), bucket, f"baseline/{p.relative_to(dataset)}"), files
                    )
                )

        boto_s = timed(baseline_dataset)
        mirror_s = timed(snapshot)
        with transfer_clock() as clock:
            cli_s = timed(
                lambda: run_cli(info, "datasets", "upload", str(dataset), "--workers", str(workers))
            )
        results["dataset"] = figures(len(files), total, cli_s, clock.seconds, boto_s, mirror_s)

    if model_mb:
        model = work / "model.safetensors"
        size = write_safetensors(model, model_mb * 1024**2)

        def baseline_model() -> None:
            s3.upload_file(str(model), bucket, "baseline/model.safetensors", Config=TransferConfig())

        boto_s = timed(baseline_model)
        mirror_s = timed(snapshot)
        s3.delete_object(Bucket=bucket, Key="baseline/model.safetensors")  # keep emulator memory bounded
        upload = ["models", "upload", str(model), "--fm-type", "sd15", "--workers", str(workers)]
        with transfer_clock() as clock:
            cli_s = timed(lambda: run_cli(info, *upload))
        results["model"] = figures(1, size, cli_s, clock.seconds, boto_s, mirror_s)
    return results


def figures(
    count: int, size: int, cli_s: float, transfer_s: float, boto_s: float, mirror_s: float
) -> dict[str, Any]:
    """The transfer alone (bytes into the bucket) and end to end (loractl: declare, transfer,
    server-side checks, the runtime's disk mirror; boto3: transfer + the same mirror)."""
    megabytes = size / 1024**2
    return {
        "files": count,
        "megabytes": round(megabytes, 1),
        "loractl_transfer_s": round(transfer_s, 2),
        "loractl_transfer_files_per_s": round(count / transfer_s, 1),
        "loractl_transfer_mb_per_s": round(megabytes / transfer_s, 1),
        "boto3_transfer_s": round(boto_s, 2),
        "boto3_transfer_files_per_s": round(count / boto_s, 1),
        "boto3_transfer_mb_per_s": round(megabytes / boto_s, 1),
        "ratio_transfer": round(boto_s / transfer_s, 2),
        "loractl_end_to_end_s": round(cli_s, 2),
        "boto3_plus_mirror_s": round(boto_s + mirror_s, 2),
        "ratio_end_to_end": round((boto_s + mirror_s) / cli_s, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000, help="images (each with a caption); 0 skips")
    parser.add_argument("--model-mb", type=int, default=2048, help="model file size in MiB; 0 skips")
    parser.add_argument("--workers", type=int, default=DEFAULT_WORKERS, help="loractl --workers")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        runtime = LocalRuntime(
            # No periodic mirror: it would compete with whichever upload is running. The mirror
            # after each mutating API request stays (it is part of loractl's end-to-end time).
            LocalRuntimeOptions(
                data_dir=work / "runtime", api_port=0, write_cli_config=False, snapshot_interval_seconds=3600
            )
        )
        runtime.start()
        try:
            results = measure(runtime, work, args.images, args.model_mb, args.workers)
        finally:
            runtime.stop()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

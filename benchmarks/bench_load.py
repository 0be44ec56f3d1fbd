"""Bounded load run against the local runtime over loopback: requests/s, p50/p99 latency, errors.

Starts its own local runtime (free ports, temporary data directory), seeds one model, one dataset
and one training job for the caller, then runs a read mix (GET /trainings, GET /trainings/{id},
GET /models, GET /configs/defaults) from N threads for a fixed time. Only 127.0.0.1 is targeted.

    .venv/bin/python benchmarks/bench_load.py [--seconds 30] [--concurrency 16]
"""

from __future__ import annotations

import sys
from pathlib import Path as _Path

# Benchmarks reuse the test harness (tests/): run from anywhere.
sys.path.insert(0, str(_Path(__file__).resolve().parents[1]))

import argparse
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from local_runtime.runtime import LocalRuntime, LocalRuntimeOptions


def seed(client: httpx.Client) -> str:
    """A job id to read (its launch is queued on the local SageMaker; reads do not need it to run)."""
    from tests.integration.workflow import png_bytes, safetensors_bytes

    content = safetensors_bytes(64)
    created = client.post(
        "/models",
        json={"name": "m", "fm_type": "sd15", "filename": "m.safetensors", "size_bytes": len(content)},
    ).json()
    part = created["upload"]["parts"][0]
    etag = httpx.put(part["url"], content=content).headers["ETag"]
    client.post(
        f"/models/{created['model']['id']}/complete", json={"parts": [{"part_number": 1, "etag": etag}]}
    )
    files = {"1_c/a.png": png_bytes(), "1_c/a.txt": b"a cat"}
    declared = client.post(
        "/datasets",
        json={"name": "d", "files": [{"path": p, "size_bytes": len(b)} for p, b in files.items()]},
    ).json()
    for upload in declared["uploads"]:
        httpx.put(upload["url"], content=files[upload["path"]])
    client.post(f"/datasets/{declared['dataset']['id']}/complete")
    job = client.post(
        "/trainings",
        json={
            "fm_type": "sd15",
            "base_model_id": created["model"]["id"],
            "dataset_id": declared["dataset"]["id"],
            "instance_type": "ml.g5.xlarge",
            "config": {"max_train_steps": 1, "resolution": 256},
        },
    ).json()
    return str(job["id"])


def run_load(base_url: str, token: str, job_id: str, seconds: float, concurrency: int) -> dict[str, Any]:
    paths = ["/trainings", f"/trainings/{job_id}", "/models", "/configs/defaults?fm_type=sd15"]
    latencies: list[float] = []
    errors: dict[str, int] = {}
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def worker(offset: int) -> None:
        local: list[float] = []
        failed: dict[str, int] = {}
        with httpx.Client(
            base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        ) as client:
            i = offset
            while time.monotonic() < deadline:
                started = time.perf_counter()
                try:
                    status = client.get(paths[i % len(paths)]).status_code
                except httpx.HTTPError as error:
                    status = type(error).__name__  # type: ignore[assignment]
                local.append(time.perf_counter() - started)
                if status != 200:
                    failed[str(status)] = failed.get(str(status), 0) + 1
                i += 1
        with lock:
            latencies.extend(local)
            for key, count in failed.items():
                errors[key] = errors.get(key, 0) + count

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(concurrency)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    ordered = sorted(latencies)
    return {
        "seconds": round(elapsed, 1),
        "concurrency": concurrency,
        "requests": len(ordered),
        "requests_per_second": round(len(ordered) / elapsed, 1),
        "p50_ms": round(statistics.median(ordered) * 1000, 1),
        "p99_ms": round(ordered[int(len(ordered) * 0.99) - 1] * 1000, 1),
        "errors": errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data_dir:
        runtime = LocalRuntime(
            LocalRuntimeOptions(data_dir=Path(data_dir), api_port=0, write_cli_config=False)
        )
        info = runtime.start()
        try:
            token = info.tokens["local"]
            with httpx.Client(
                base_url=info.api_url, headers={"Authorization": f"Bearer {token}"}, timeout=60
            ) as c:
                job_id = seed(c)
            result = run_load(info.api_url, token, job_id, args.seconds, args.concurrency)
        finally:
            runtime.stop()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

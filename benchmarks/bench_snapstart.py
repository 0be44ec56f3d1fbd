"""What SnapStart can take off the API function's cold start, measured locally.

In fresh interpreters (median of ``--runs``): the API handler's import (the init phase SnapStart
replaces with a restore), then the first creation of the API's boto3 clients, without and with
``preload_service_models`` (the before-snapshot hook). A restore's own latency and the restored
first request can only be measured on Lambda (README "Cold starts").

    .venv/bin/python benchmarks/bench_snapstart.py [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROBE = """
import json, os, time
t0 = time.perf_counter()
import functions.api.handler
t1 = time.perf_counter()
from functions.adapters import aws_clients as c
if os.environ.get("BENCH_PRELOAD"):
    c.preload_service_models()
t2 = time.perf_counter()
for make in (c.dynamodb_resource, c.s3_client, c.sagemaker_client, c.events_client, c.sqs_client,
             c.lambda_client, c.logs_client):
    make()
t3 = time.perf_counter()
ms = {"import_ms": t1 - t0, "preload_ms": t2 - t1, "clients_ms": t3 - t2}
print(json.dumps({k: v * 1e3 for k, v in ms.items()}))
"""
ENV = {
    "TABLE_NAME": "bench", "IDEMPOTENCY_TABLE_NAME": "bench-idem", "BUCKET_NAME": "bench",
    "PAGE_TOKEN_SECRET": "bench", "POWERTOOLS_TRACE_DISABLED": "true", "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x",
}  # fmt: skip


def measure(preload: bool, runs: int) -> dict[str, float]:
    env = {**os.environ, **ENV, "PYTHONPATH": str(ROOT), "BENCH_PRELOAD": "1" if preload else ""}
    results = []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True
        )
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return {key: round(statistics.median(r[key] for r in results)) for key in results[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    plain, preloaded = measure(False, args.runs), measure(True, args.runs)
    print(f"API handler import (init phase; in the snapshot with SnapStart): {plain['import_ms']} ms")
    print(f"first creation of the API's 7 clients, no preload:              {plain['clients_ms']} ms")
    print(f"  with the before-snapshot preload ({preloaded['preload_ms']} ms, in the snapshot): "
          f"{preloaded['clients_ms']} ms after restore")  # fmt: skip


if __name__ == "__main__":
    main()

"""Cold-start proxy for the Lambda functions.

Measures, in fresh interpreters, the wall time and peak memory of importing each handler module
(median of several runs), and the unzipped size of each Lambda bundle built by the CDK bundling
step (``infrastructure``'s local bundler) when it exists in ``cdk.out``. Targets: import <= 300 ms,
bundle <= 25 MB. Prints the slowest imports (``-X importtime``) so the dominant cost is visible.

    .venv/bin/python benchmarks/bench_cold_start.py [--runs 7]
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
HANDLERS = (
    "functions.api.handler",
    "functions.events.handler",
    "functions.reconciler.handler",
    "functions.webhooks.handler",
    "functions.tasks.handler",
)
# Environment a deployed function has; values are irrelevant to import cost.
LAMBDA_ENV = {
    "TABLE_NAME": "bench",
    "IDEMPOTENCY_TABLE_NAME": "bench-idem",
    "BUCKET_NAME": "bench",
    "PAGE_TOKEN_SECRET": "bench",
    "POWERTOOLS_SERVICE_NAME": "lora",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "x",
    "AWS_SECRET_ACCESS_KEY": "x",
}
_PROBE = """
import resource, sys, time
t0 = time.perf_counter()
import importlib
importlib.import_module(sys.argv[1])
elapsed = time.perf_counter() - t0
print(elapsed, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def measure_import(module: str, runs: int) -> tuple[float, float]:
    """Median import seconds and peak RSS (MiB) over ``runs`` fresh interpreters."""
    times, rss = [], []
    env = {**os.environ, **LAMBDA_ENV, "PYTHONDONTWRITEBYTECODE": "0"}
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", _PROBE, module],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split()
        times.append(float(out[0]))
        rss.append(int(out[1]) / 1024)
    return statistics.median(times), statistics.median(rss)


def top_imports(module: str, count: int = 6) -> list[tuple[int, str]]:
    """The slowest cumulative imports reported by ``python -X importtime``."""
    env = {**os.environ, **LAMBDA_ENV}
    err = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stderr
    rows: list[tuple[int, str]] = []
    for line in err.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = (part.strip() for part in line[len("import time:") :].split("|"))
        if "." not in name.strip():  # top-level packages only
            rows.append((int(cumulative), name.strip()))
    return sorted(rows, reverse=True)[:count]


def bundle_sizes_mb() -> dict[str, float]:
    """Unzipped size of each function's Lambda asset in cdk.out (``make synth`` builds them)."""
    out = ROOT / "cdk.out"
    template_file = out / "LoraTraining.template.json"
    if not template_file.is_file():
        return {}
    sizes: dict[str, float] = {}
    for resource in json.loads(template_file.read_text())["Resources"].values():
        properties = resource.get("Properties", {})
        if resource["Type"] != "AWS::Lambda::Function" or not str(properties.get("Handler")).startswith(
            "functions."
        ):
            continue
        folder = out / f"asset.{str(properties['Code']['S3Key']).removesuffix('.zip')}"
        if folder.is_dir():
            total = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
            sizes[str(properties["Handler"]).removesuffix(".lambda_handler")] = total / 1024**2
    return sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results: dict[str, object] = {}
    for module in HANDLERS:
        seconds, rss = measure_import(module, args.runs)
        results[module] = {
            "import_ms": round(seconds * 1000, 1),
            "peak_rss_mib": round(rss, 1),
            "top_imports_us": top_imports(module),
        }
    sizes = bundle_sizes_mb()
    results["bundle_unzipped_mb"] = {handler: round(mb, 2) for handler, mb in sizes.items()}
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for module in HANDLERS:
        r = results[module]
        assert isinstance(r, dict)
        print(f"{module:32s} import {r['import_ms']:7.1f} ms (<= 300)  RSS {r['peak_rss_mib']:.1f} MiB")
        print(
            "    slowest top-level imports: "
            + ", ".join(f"{n} {us / 1000:.0f} ms" for us, n in r["top_imports_us"])
        )
    if not sizes:
        print("Lambda bundles: not built (run `make synth` first)")
    for handler, mb in sorted(sizes.items()):
        note = "(target <= 25)" if handler != "functions.tasks.handler" else "(background tasks, with Pillow)"
        print(f"Lambda bundle of {handler:32s} (unzipped): {mb:6.2f} MB {note}")


if __name__ == "__main__":
    main()

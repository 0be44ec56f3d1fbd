"""Dataset validation (``POST /datasets/{id}/complete``) time against the file count.

Files are declared through the API and written straight into the emulated bucket (the upload
path is measured by bench_data_path-style runs, not here); then ``complete`` is timed. Per-file
time should stay flat (linear scaling): ``complete`` lists the prefix once and sniffs each
object's first bytes.

    .venv/bin/python benchmarks/bench_dataset_validation.py [--counts 1000,5000]
"""

from __future__ import annotations

import sys
from pathlib import Path as _Path

# Benchmarks reuse the test harness (tests/): run from anywhere.
sys.path.insert(0, str(_Path(__file__).resolve().parents[1]))

import argparse
import time
import uuid
from concurrent.futures import ThreadPoolExecutor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default="1000,5000", help="file counts (images + captions), max 5000")
    args = parser.parse_args()

    from tests.conftest import BUCKET, running_aws_emulator
    from tests.integration.conftest import ApiCaller
    from tests.integration.workflow import png_bytes

    image, caption = png_bytes(), b"a photo of a cat"
    with running_aws_emulator():
        import boto3

        from functions.domain.storage_layout import dataset_file_key

        s3 = boto3.client("s3")
        print(f"{'files':>6} {'complete s':>11} {'ms/file':>8}")
        for count in (int(c) for c in args.counts.split(",")):
            api = ApiCaller(f"arn:aws:iam::123456789012:user/bench-{uuid.uuid4().hex[:8]}")
            files = {}
            for i in range(count // 2):
                files[f"10_cat/img{i}.png"] = image
                files[f"10_cat/img{i}.txt"] = caption
            status, created = api(
                "POST",
                "/datasets",
                {"name": "bench", "files": [{"path": p, "size_bytes": len(b)} for p, b in files.items()]},
            )
            assert status == 201, created
            dataset_id = created["dataset"]["id"]
            keys = {dataset_file_key(api.owner, dataset_id, path): body for path, body in files.items()}
            with ThreadPoolExecutor(8) as pool:
                list(
                    pool.map(
                        lambda item: s3.put_object(Bucket=BUCKET, Key=item[0], Body=item[1]), keys.items()
                    )
                )
            started = time.perf_counter()
            status, dataset = api("POST", f"/datasets/{dataset_id}/complete")
            elapsed = time.perf_counter() - started
            assert status == 200 and dataset["status"] == "ready", dataset
            print(f"{len(files):6d} {elapsed:11.2f} {elapsed / len(files) * 1000:8.2f}")


if __name__ == "__main__":
    main()

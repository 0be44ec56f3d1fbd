"""Handler overhead: the API handler's in-process time against the raw boto3 calls it makes.

Both run against the same moto server on loopback in one process, alternating, median of N.
Reads (target <= 1.2x): GET /trainings/{id} = GetItem + GetObject(progress);
GET /trainings = one Query on gsi1. POST /trainings (SageMaker stubbed with botocore's Stubber)
is reported too: its raw sequence is GetItem x2 (model, dataset), Query (active jobs), PutItem,
CreateTrainingJob, UpdateItem.

    .venv/bin/python benchmarks/bench_handler_overhead.py [--runs 200]
"""

from __future__ import annotations

import sys
from pathlib import Path as _Path

# Benchmarks reuse the test harness (tests/): run from anywhere.
sys.path.insert(0, str(_Path(__file__).resolve().parents[1]))

import argparse
import contextlib
import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError


def median_ms(call: Callable[[], Any], runs: int) -> float:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()

    from tests.conftest import running_aws_emulator  # the integration tests' moto server
    from tests.integration.conftest import ApiCaller

    with running_aws_emulator():
        measure(args.runs, ApiCaller)


def measure(runs: int, api_caller: Any) -> None:
    from functions.adapters.aws_clients import dynamodb_resource, s3_client, sagemaker_client
    from functions.domain.storage_layout import training_progress_key
    from functions.services.context import service_context
    from tests.integration.workflow import ready_inputs, training_body

    api = api_caller(f"arn:aws:iam::123456789012:user/bench-{uuid.uuid4().hex[:8]}")
    ctx = service_context()
    model_id, dataset_id = ready_inputs(api)
    from botocore.stub import Stubber

    stub = Stubber(sagemaker_client())
    stub.activate()
    for _ in range(runs * 2 + 10):  # setup, warm-up and every measured POST (handler and raw)
        stub.add_response(
            "create_training_job", {"TrainingJobArn": "arn:aws:sagemaker:us-east-1:1:training-job/x"}
        )
    ctx.settings = __import__("dataclasses").replace(ctx.settings, max_concurrent_jobs_per_owner=10**6)
    _, job = api("POST", "/trainings", training_body(model_id, dataset_id))
    table = dynamodb_resource().Table(ctx.settings.table_name)
    bucket = ctx.settings.bucket_name

    def raw_get_job() -> None:
        table.get_item(Key={"pk": f"JOB#{job['id']}", "sk": "META"}, ConsistentRead=True)
        with contextlib.suppress(ClientError):  # 404 until the container reports progress, as in the handler
            s3_client().get_object(Bucket=bucket, Key=training_progress_key(api.owner, job["id"]))

    def raw_list_jobs() -> None:
        table.query(
            IndexName="gsi1", KeyConditionExpression=Key("gsi1pk").eq(f"OWNER#{api.owner}#JOB"),
            ScanIndexForward=False, Limit=50,
        )  # fmt: skip

    def raw_create_job() -> None:
        table.get_item(Key={"pk": f"MODEL#{model_id}", "sk": "META"}, ConsistentRead=True)
        table.get_item(Key={"pk": f"DATASET#{dataset_id}", "sk": "META"}, ConsistentRead=True)
        table.query(
            IndexName="gsi3",
            KeyConditionExpression=Key("gsi3pk").eq("ACTIVE_JOB")
            & Key("gsi3sk").begins_with(f"{api.owner}#"),
        )
        item_id = uuid.uuid4().hex
        table.put_item(Item={"pk": f"BENCH#{item_id}", "sk": "META", "status": "PENDING"})
        sagemaker_client().create_training_job(
            TrainingJobName=f"bench-{item_id[:20]}",
            AlgorithmSpecification={"TrainingImage": "img", "TrainingInputMode": "File"},
            RoleArn="arn:aws:iam::123456789012:role/x",
            OutputDataConfig={"S3OutputPath": "s3://b/o/"},
            ResourceConfig={"InstanceType": "ml.g5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 10},
            StoppingCondition={"MaxRuntimeInSeconds": 3600},
        )
        table.update_item(
            Key={"pk": f"BENCH#{item_id}", "sk": "META"}, UpdateExpression="SET #s = :s",
            ExpressionAttributeNames={"#s": "status"}, ExpressionAttributeValues={":s": "STARTING"},
        )  # fmt: skip

    cases = [
        ("GET /trainings/{id}", lambda: api("GET", f"/trainings/{job['id']}"), raw_get_job),
        ("GET /trainings", lambda: api("GET", "/trainings"), raw_list_jobs),
        (
            "POST /trainings",
            lambda: api("POST", "/trainings", training_body(model_id, dataset_id)),
            raw_create_job,
        ),
    ]
    print(f"{'route':22s} {'handler ms':>11s} {'raw boto3 ms':>13s} {'ratio':>6s}")
    for name, handler_call, raw_call in cases:
        handler_call(), raw_call()  # warm both paths
        handler = median_ms(handler_call, runs)
        raw = median_ms(raw_call, runs)
        print(f"{name:22s} {handler:11.2f} {raw:13.2f} {handler / raw:6.2f}x")


if __name__ == "__main__":
    main()

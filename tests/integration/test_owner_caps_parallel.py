"""Per-owner caps hold under truly parallel requests: the real API and events handlers, each call in
its own process (as concurrent Lambdas run), against one DynamoDB table.

Before the caps were transactional, the job cap was a count query followed by an unconditioned
put, and a model/dataset deletion checked for active jobs before deleting: parallel callers all
passed the check. Each scenario runs ROUNDS times with PARALLEL simultaneous calls.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import random
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from tests.conftest import TABLE, LambdaContextStub, proxy_event
from tests.integration.conftest import ApiCaller, sagemaker_event
from tests.integration.workflow import ready_inputs, training_body

ROUNDS = 20
PARALLEL = 20
JOB_CAP = 2
STORAGE_CAP = 10_000_000
MODEL_SIZE = 2_000_000  # five fit under the storage cap

_barrier: Any = None


def _worker_init(barrier: Any) -> None:
    """A fresh 'Lambda': its own settings, clients and caches (nothing shared with the parent)."""
    global _barrier
    _barrier = barrier
    os.environ["MAX_CONCURRENT_JOBS_PER_OWNER"] = str(JOB_CAP)
    os.environ["MAX_STORAGE_BYTES_PER_OWNER"] = str(STORAGE_CAP)
    from functions.adapters import aws_clients
    from functions.services.context import service_context

    for name in dir(aws_clients):
        cached = getattr(aws_clients, name)
        if hasattr(cached, "cache_clear"):
            cached.cache_clear()
    service_context.cache_clear()


def _invoke(call: tuple[str, dict[str, Any]] | tuple[str, dict[str, Any], float]) -> tuple[int, Any]:
    """Wait for the others (then an optional delay), run one handler invocation; (status, body)."""
    kind, event, *delay = call
    with contextlib.suppress(threading.BrokenBarrierError):
        _barrier.wait(timeout=30)
    if delay:
        time.sleep(delay[0])
    if kind == "api":
        from functions.api.handler import lambda_handler

        response = lambda_handler(event, LambdaContextStub())
        return int(response["statusCode"]), json.loads(response.get("body") or "null")
    from functions.events.handler import lambda_handler as events_handler

    return 200, events_handler(event, LambdaContextStub(function_name="events"))


@pytest.fixture(scope="module")
def pool(aws_emulator: str) -> Iterator[Any]:
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(PARALLEL)
    with context.Pool(PARALLEL, initializer=_worker_init, initargs=(barrier,)) as workers:
        yield workers


def _api(owner: str, method: str, path: str, body: Any = None) -> tuple[str, dict[str, Any]]:
    headers = {"Idempotency-Key": str(uuid.uuid4())} if method == "POST" else None
    return "api", proxy_event(method, path, owner, body, headers=headers)


def _item(pk: str, sk: str = "META") -> dict[str, Any]:
    table = boto3.resource("dynamodb").Table(TABLE)
    return dict(table.get_item(Key={"pk": pk, "sk": sk}, ConsistentRead=True).get("Item") or {})


def _active_jobs(owner: str) -> list[dict[str, Any]]:
    from functions.adapters.repository import Repository

    return [j.model_dump(mode="json") for j in Repository(TABLE).active_jobs(owner)]


def _new_owner() -> ApiCaller:
    return ApiCaller(f"arn:aws:iam::123456789012:user/caps-{uuid.uuid4().hex[:10]}")


def test_parallel_creates_never_exceed_the_job_cap_and_every_end_releases_once(pool: Any) -> None:
    figures = []
    for _ in range(ROUNDS):
        api = _new_owner()
        model_id, dataset_id = ready_inputs(api)
        body = training_body(model_id, dataset_id)
        calls = [_api(api.owner, "POST", "/trainings", body) for _ in range(PARALLEL)]
        results = pool.map(_invoke, calls, chunksize=1)
        statuses = sorted(status for status, _ in results)
        active = _active_jobs(api.owner)
        figures.append((statuses.count(201), len(active)))
        assert len(active) <= JOB_CAP, (statuses, len(active))
        assert statuses.count(201) == JOB_CAP and statuses.count(429) == PARALLEL - JOB_CAP, results
        assert int(_item(f"USAGE#{api.owner}", "JOBS")["active_jobs"]) == JOB_CAP
        # Every job ended by many duplicate, parallel terminal events: released exactly once.
        names = [job["sagemaker_job_name"] for job in active]
        ends = [
            ("event", sagemaker_event(names[i % len(names)], ("Failed", "Stopped")[i % 2], "Failed"))
            for i in range(PARALLEL)
        ]
        pool.map(_invoke, ends, chunksize=1)
        assert _active_jobs(api.owner) == []
        assert int(_item(f"USAGE#{api.owner}", "JOBS")["active_jobs"]) == 0
        assert int(_item(f"MODEL#{model_id}").get("in_use", 0)) == 0
        assert int(_item(f"DATASET#{dataset_id}").get("in_use", 0)) == 0
    print(f"job cap {JOB_CAP}: (accepted, active) per round = {figures}")


def test_parallel_registrations_never_exceed_the_storage_cap(pool: Any) -> None:
    accepted_per_round = []
    for _ in range(ROUNDS):
        api = _new_owner()
        body = {"name": "m", "fm_type": "sd15", "filename": "base.safetensors", "size_bytes": MODEL_SIZE}
        calls = [_api(api.owner, "POST", "/models", body) for _ in range(PARALLEL)]
        results = pool.map(_invoke, calls, chunksize=1)
        accepted = sum(1 for status, _ in results if status == 201)
        accepted_per_round.append(accepted)
        used = int(_item(f"USAGE#{api.owner}").get("bytes", 0))
        assert used <= STORAGE_CAP
        assert accepted == STORAGE_CAP // MODEL_SIZE and used == accepted * MODEL_SIZE, results
        assert {status for status, _ in results} == {201, 429}
    print(f"storage cap: accepted per round = {accepted_per_round}")


def test_deleting_inputs_while_jobs_are_created_leaves_no_job_without_its_inputs(pool: Any) -> None:
    outcomes = []
    for round_number in range(ROUNDS):
        api = _new_owner()
        model_id, dataset_id = ready_inputs(api)
        body = training_body(model_id, dataset_id)
        target = f"/datasets/{dataset_id}" if round_number % 2 else f"/models/{model_id}"
        # The deletes land at random moments while the creates are validating and recording.
        calls: list[Any] = [
            _api(api.owner, "POST", "/trainings", body)
            if i % 2
            else (*_api(api.owner, "DELETE", target), random.uniform(0.05, 0.6))
            for i in range(PARALLEL)
        ]
        results = pool.map(_invoke, calls, chunksize=1)
        created = [body for status, body in results if status == 201]
        deleted = any(status == 204 for status, _ in results)
        active = _active_jobs(api.owner)
        outcomes.append(("deleted" if deleted else "kept", len(created), len(active)))
        for job in active:  # an active job's inputs are never gone
            assert _item(f"MODEL#{job['base_model_id']}"), (round_number, results)
            assert _item(f"DATASET#{job['dataset_id']}"), (round_number, results)
        assert not (deleted and active), (round_number, results)
        assert len(active) <= JOB_CAP
        for job in created:  # and a job answered 201 was really recorded with them
            assert job["status"] in ("PENDING", "STARTING")
    print(f"delete vs create: (dataset/model, jobs created, active) per round = {outcomes}")

"""A restart of the local runtime ends the background tasks the previous run never finished,
as it ends its unfinished training jobs: their records are failed at once, not 20 minutes later."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import httpx

from functions.services.background import INTERRUPTED_REASON
from local_runtime.lambda_server import LocalLambdaService
from local_runtime.runtime import end_interrupted_tasks
from tests.integration.conftest import ApiCaller
from tests.integration.workflow import declare_dataset, good_dataset


class HangingFunction:
    """A tasks function whose run never ends (until released): the runtime dies meanwhile."""

    function_name = "lora-local-tasks"

    def __init__(self) -> None:
        self.started, self.release = threading.Event(), threading.Event()

    def invoke(self, event: Any) -> None:
        self.started.set()
        self.release.wait(timeout=30)


def test_a_restart_fails_the_records_of_interrupted_tasks(
    api: ApiCaller, dispatched_tasks: list[Any], tmp_path: Path
) -> None:
    files = good_dataset()
    _status, created = declare_dataset(api, files)
    for upload in created["uploads"]:
        httpx.put(upload["url"], content=files[upload["path"]], headers=upload["headers"])
    dataset_id = created["dataset"]["id"]
    assert api("POST", f"/datasets/{dataset_id}/complete")[1]["status"] == "validating"
    status, model = api(
        "POST", "/models", {"name": "i", "fm_type": "sd15", "source_url": "http://127.0.0.1:9/m.safetensors"}
    )
    assert status == 202 and model["model"]["status"] == "processing", model
    journal = tmp_path / "in-flight"
    hanging = HangingFunction()
    before = LocalLambdaService({"lora-local-tasks": hanging}, journal_dir=journal)  # type: ignore[dict-item]
    for task in dispatched_tasks:
        before.invoke_async(hanging, task.model_dump(mode="json"))  # type: ignore[arg-type]
    assert hanging.started.wait(timeout=10)
    # ... the runtime is killed here; the next one starts on the same data directory:
    after = LocalLambdaService({}, journal_dir=journal)
    unfinished = after.take_interrupted()
    assert len(unfinished) == 2 and not list(journal.glob("*.json"))
    ended = end_interrupted_tasks(unfinished)
    assert sorted(ended) == sorted(
        [f"dataset_validation {dataset_id}", f"model_import {model['model']['id']}"]
    )
    dataset = api("GET", f"/datasets/{dataset_id}")[1]
    assert dataset["status"] == "failed" and dataset["failure_reason"] == INTERRUPTED_REASON
    imported = api("GET", f"/models/{model['model']['id']}")[1]
    assert imported["status"] == "failed" and imported["failure_reason"] == INTERRUPTED_REASON
    assert end_interrupted_tasks(unfinished) == []  # ended once; a finished record is left alone
    hanging.release.set()
    before.shutdown()


def test_a_finished_invocation_leaves_no_journal_entry(tmp_path: Path) -> None:
    done = threading.Event()

    class Quick:
        function_name = "lora-local-tasks"

        def invoke(self, event: Any) -> None:
            done.set()

    service = LocalLambdaService({}, journal_dir=tmp_path)
    service.invoke_async(Quick(), {"kind": "model_import"})  # type: ignore[arg-type]
    assert done.wait(timeout=10)
    service.shutdown()
    for _ in range(100):
        if not list(tmp_path.glob("*.json")):
            break
        threading.Event().wait(0.05)
    assert list(tmp_path.glob("*.json")) == []

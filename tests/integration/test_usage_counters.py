"""The per-owner counters: stored bytes never meet job transactions, survive crashes mid-delete,
and single-item writes outlast a transaction holding the item."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from functions.adapters.repository import Repository
from functions.domain.records import DatasetRecord, ModelRecord
from functions.services.context import ServiceContext, service_context
from functions.services.datasets import delete_dataset
from functions.services.models import delete_model
from tests.conftest import TABLE
from tests.integration.conftest import ApiCaller
from tests.integration.workflow import ready_inputs, training_body


@pytest.fixture
def ctx(aws_emulator: str) -> ServiceContext:
    return service_context()


def _usage(owner: str, sk: str) -> dict[str, Any]:
    table = boto3.resource("dynamodb").Table(TABLE)
    return dict(table.get_item(Key={"pk": f"USAGE#{owner}", "sk": sk}, ConsistentRead=True).get("Item") or {})


def test_job_slots_live_apart_from_stored_bytes(api: ApiCaller) -> None:
    """Job transactions hold the JOBS item only, so uploads' plain writes to bytes never meet them."""
    model_id, dataset_id = ready_inputs(api)
    assert api("POST", "/trainings", training_body(model_id, dataset_id))[0] == 201
    assert int(_usage(api.owner, "JOBS")["active_jobs"]) == 1
    assert "active_jobs" not in _usage(api.owner, "META")
    assert int(_usage(api.owner, "META")["bytes"]) > 0


class _ConflictOnce:
    """A table whose first UpdateItem meets a transaction holding the item."""

    def __init__(self, real: Any) -> None:
        self.real, self.conflicts = real, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def update_item(self, **kwargs: Any) -> Any:
        if self.conflicts == 0:
            self.conflicts += 1
            raise ClientError(
                {"Error": {"Code": "TransactionConflictException", "Message": "ongoing transaction"}},
                "UpdateItem",
            )
        return self.real.update_item(**kwargs)


@pytest.mark.parametrize("write", ["reserve", "release"])
def test_storage_writes_retry_a_transaction_conflict(
    ctx: ServiceContext, monkeypatch: pytest.MonkeyPatch, write: str
) -> None:
    owner = f"conflict-{write}"
    table = _ConflictOnce(boto3.resource("dynamodb").Table(TABLE))
    monkeypatch.setattr(Repository, "_table", property(lambda self: table))
    if write == "reserve":
        ctx.repository.reserve_storage(owner, 100, 1000)
    else:
        ctx.repository.release_storage(owner, 100)
    monkeypatch.undo()
    assert table.conflicts == 1
    assert ctx.repository.storage_used(owner) == (100 if write == "reserve" else -100)


@pytest.mark.parametrize("kind", ["dataset", "model"])
def test_a_crash_after_a_delete_loses_no_bytes(
    api: ApiCaller, ctx: ServiceContext, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    model_id, dataset_id = ready_inputs(api)
    before = ctx.repository.storage_used(api.owner)
    record_type = DatasetRecord if kind == "dataset" else ModelRecord
    record_id = dataset_id if kind == "dataset" else model_id
    record: Any = ctx.repository.get(record_type, record_id, api.owner)
    size = record.total_bytes if kind == "dataset" else record.size_bytes
    assert size > 0

    def crash(*args: Any, **kwargs: Any) -> None:
        raise TimeoutError("Task timed out")

    monkeypatch.setattr(ctx.storage, "delete_prefix", crash)
    monkeypatch.setattr(ctx.storage, "delete", crash)
    with pytest.raises(TimeoutError):
        if kind == "dataset":
            delete_dataset(ctx, api.owner, dataset_id)
        else:
            delete_model(ctx, api.owner, model_id)
    monkeypatch.undo()
    assert api("GET", f"/{kind}s/{record_id}")[0] == 404
    assert ctx.repository.storage_used(api.owner) == before - size  # given back with the record

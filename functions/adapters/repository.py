"""DynamoDB persistence of models, datasets and training jobs (one table, keys in table_schema).

    item          pk = "<TYPE>#<id>", sk = "META"
    gsi1          gsi1pk = "OWNER#<owner>#<TYPE>",            gsi1sk = "<created_at>#<id>"  (newest first)
    gsi2          gsi2pk = "OWNER#<owner>#<TYPE>#<status>",   gsi2sk = same                 (by status)
    gsi3 (jobs)   gsi3pk = "ACTIVE_JOB", gsi3sk = "<owner>#<created_at>#<id>"   only while active
                  gsi3pk = "ACTIVE_CAPTIONS" (same sk) for a dataset waiting for its captions job
    usage         pk = "USAGE#<owner>", sk = "META", bytes                   per-owner stored bytes
    job slots     pk = "USAGE#<owner>", sk = "JOBS", active_jobs             per-owner active jobs
    in_use        on MODEL/DATASET items: how many active jobs use the record

Every list is one Query, newest first; no Scan anywhere. Job status changes are conditional
writes on the current status (``status IN predecessors(target)``), so a late or duplicate event
can never move a job backwards.

The per-owner caps are counters changed in the same write as what they count, never a count
followed by a write (concurrent Lambdas would both pass the count):
- a job is recorded by one TransactWriteItems that puts the job, adds 1 to ``active_jobs`` on
  condition that it is below the cap, and adds 1 to ``in_use`` of its model and dataset on
  condition that each is still ready and the caller's;
- the one conditional write that ends a job (``status IN`` the non-terminal statuses) is a
  transaction that also gives those three counts back, so the release happens exactly once;
- deleting a model or dataset is conditional on ``in_use`` being 0;
- stored bytes are one conditional ``ADD`` (``reserve_storage``).
The active-job counter has its own item (sk JOBS), apart from the stored bytes (sk META): a
plain UpdateItem on an item that a transaction holds fails with TransactionConflictException,
which botocore does not retry (neither botocore/data/_retry.json's dynamodb policies nor
botocore/retries/standard.py's throttling/transient codes list it), so job transactions must not
hold the item every upload writes. The few transactions that do touch the bytes (a model
registered with its bytes, a record deleted with its bytes) are met by ``_retry_conflicts``.
DynamoDB transactions are serializable and check every condition atomically
(https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis.html).
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any, TypeVar

from boto3.dynamodb.conditions import Attr, Key
from botocore.exceptions import ClientError
from pydantic import BaseModel

from functions.adapters.aws_clients import dynamodb_resource
from functions.domain.catalog import ResourceStatus
from functions.domain.errors import Conflict, LimitExceeded, NotFound
from functions.domain.records import DatasetRecord, ModelRecord, StatusChange, TrainingJobRecord
from functions.domain.statuses import JobStatus, is_terminal, predecessors

R = TypeVar("R", bound=BaseModel)
T = TypeVar("T")
META = "META"
ACTIVE_JOB = "ACTIVE_JOB"
ACTIVE_CAPTIONS = "ACTIVE_CAPTIONS"  # gsi3pk of a dataset whose captions job is still running
_CAPTIONS_WAITING = (ResourceStatus.PROCESSING, ResourceStatus.VALIDATING)
_TYPES: dict[type[BaseModel], str] = {
    ModelRecord: "MODEL",
    DatasetRecord: "DATASET",
    TrainingJobRecord: "JOB",
}
# Counters and markers kept on items beside the record's own fields (never part of a record).
IN_USE = "in_use"  # MODEL/DATASET: active jobs using it
HOLDS_SLOT = "holds_slot"  # JOB: recorded through the counted path, so its end gives the counts back
ACTIVE_JOBS = "active_jobs"  # USAGE/JOBS: the owner's active jobs
JOB_SLOTS = "JOBS"  # sort key of the owner's active-job counter (stored bytes are on META)
_KEY_ATTRIBUTES = (
    "pk",
    "sk",
    "gsi1pk",
    "gsi1sk",
    "gsi2pk",
    "gsi2sk",
    "gsi3pk",
    "gsi3sk",
    IN_USE,
    HOLDS_SLOT,
)


def _to_dynamo(data: Any) -> Any:
    return json.loads(json.dumps(data), parse_float=Decimal)


def _from_dynamo(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _from_dynamo(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_dynamo(v) for v in value]
    return value


def _is_condition_failure(error: ClientError) -> bool:
    return error.response["Error"]["Code"] == "ConditionalCheckFailedException"


TRANSACTION_ATTEMPTS = 6


def _retry_conflicts(write: Callable[[], T]) -> T:
    """Run a single-item write, retrying with jitter while a transaction holds the item.

    DynamoDB rejects such a write with TransactionConflictException ("there is an ongoing
    transaction for the item": botocore/data/dynamodb/2012-08-10/service-2.json), a code
    botocore's retry handlers leave to the caller.
    """
    for attempt in range(TRANSACTION_ATTEMPTS):
        try:
            return write()
        except ClientError as error:
            conflict = error.response["Error"]["Code"] == "TransactionConflictException"
            if not conflict or attempt + 1 == TRANSACTION_ATTEMPTS:
                raise
            time.sleep(random.uniform(0, 0.05 * 2**attempt))
    raise AssertionError("unreachable: the last attempt returns or raises")


def _cancellation_codes(error: ClientError) -> list[str] | None:
    """Why each item of a cancelled transaction failed ("None" where it did not), or None if the
    error is not a cancellation."""
    if error.response["Error"]["Code"] != "TransactionCanceledException":
        return None
    return [str(r.get("Code") or "None") for r in error.response.get("CancellationReasons", [])]


def _record(record_type: type[R], item: dict[str, Any]) -> R:
    return record_type.model_validate(
        _from_dynamo({k: v for k, v in item.items() if k not in _KEY_ATTRIBUTES})
    )


class Repository:
    def __init__(self, table_name: str) -> None:
        self.table_name = table_name

    @property
    def _table(self) -> Any:
        return dynamodb_resource().Table(self.table_name)

    def _transact(self, items: list[dict[str, Any]]) -> list[str] | None:
        """Run one TransactWriteItems; None when it committed, else each item's cancellation code.

        Items use the resource client's plain Python values. A cancellation for a conflict with
        another transaction on the same item (``TransactionConflict``: DynamoDB's answer to two
        concurrent transactions on a counter) is retried with jitter; condition failures are not.
        """
        client = dynamodb_resource().meta.client
        for item in items:
            next(iter(item.values()))["TableName"] = self.table_name
        for attempt in range(TRANSACTION_ATTEMPTS):
            try:
                client.transact_write_items(TransactItems=items)
            except ClientError as error:
                codes = _cancellation_codes(error)
                if codes is None:
                    raise
                conflict_only = "TransactionConflict" in codes and "ConditionalCheckFailed" not in codes
                if conflict_only and attempt + 1 < TRANSACTION_ATTEMPTS:
                    time.sleep(random.uniform(0, 0.05 * 2**attempt))  # jitter between retries
                    continue
                return codes
            return None
        return ["TransactionConflict"]

    # ------------------------------------------------------------ generic records
    @staticmethod
    def _keys(record: BaseModel) -> dict[str, str]:
        kind = _TYPES[type(record)]
        data = record.model_dump()
        sort = f"{data['created_at']}#{data['id']}"
        keys = {
            "pk": f"{kind}#{data['id']}",
            "sk": META,
            "gsi1pk": f"OWNER#{data['owner']}#{kind}",
            "gsi1sk": sort,
            "gsi2pk": f"OWNER#{data['owner']}#{kind}#{data['status']}",
            "gsi2sk": sort,
        }
        if isinstance(record, TrainingJobRecord) and not is_terminal(record.status):
            keys |= {"gsi3pk": ACTIVE_JOB, "gsi3sk": f"{record.owner}#{sort}"}
        if isinstance(record, DatasetRecord) and record.captions and record.status in _CAPTIONS_WAITING:
            keys |= {"gsi3pk": ACTIVE_CAPTIONS, "gsi3sk": f"{record.owner}#{sort}"}
        return keys

    def create(self, record: BaseModel) -> None:
        item = _to_dynamo(record.model_dump(mode="json")) | self._keys(record)
        self._table.put_item(Item=item, ConditionExpression=Attr("pk").not_exists())

    def create_if_absent(self, record: BaseModel, *, counting_bytes: tuple[str, int] | None = None) -> bool:
        """Create a record unless its id exists; False if it did.

        ``counting_bytes`` (owner, bytes) adds the record's stored bytes in the same transaction
        (unconditionally: used for work already paid for), so the record is never there uncounted.
        """
        if counting_bytes is not None:
            owner, size = counting_bytes
            item = _to_dynamo(record.model_dump(mode="json")) | self._keys(record)
            put = {"Item": item, "ConditionExpression": "attribute_not_exists(pk)"}
            codes = self._transact([{"Put": put}, {"Update": self._storage_change(owner, size)}])
            if codes is None:
                return True
            if codes[0] == "ConditionalCheckFailed":
                return False
            raise Conflict(f"the record could not be stored ({', '.join(codes)}); try again")
        try:
            self.create(record)
        except ClientError as error:
            if _is_condition_failure(error):
                return False
            raise
        return True

    def get(self, record_type: type[R], record_id: str, owner: str | None) -> R:
        """The record, or NotFound when it does not exist *or belongs to someone else*."""
        kind = _TYPES[record_type]
        item = self._table.get_item(Key={"pk": f"{kind}#{record_id}", "sk": META}, ConsistentRead=True).get(
            "Item"
        )
        if item is None or (owner is not None and item.get("owner") != owner):
            raise NotFound(f"{kind.lower()} {record_id} not found")
        return record_type.model_validate(
            _from_dynamo({k: v for k, v in item.items() if k not in _KEY_ATTRIBUTES})
        )

    def save(self, record: BaseModel, *, expected_status: str | None = None) -> bool:
        """Overwrite a record (status may change); with ``expected_status`` only if unchanged."""
        item = _to_dynamo(record.model_dump(mode="json")) | self._keys(record)
        condition: Any = Attr("pk").exists()
        if expected_status is not None:
            condition = condition & Attr("status").eq(expected_status)
        try:
            self._table.put_item(Item=item, ConditionExpression=condition)
        except ClientError as error:
            if _is_condition_failure(error):
                return False
            raise
        return True

    def delete(
        self,
        record_type: type[BaseModel],
        record_id: str,
        *,
        expected_status: str | None = None,
        release_bytes: tuple[str, int] | None = None,
    ) -> bool:
        """Delete a record; False if it is gone (or not in ``expected_status``).

        A model or dataset is deleted only while no active job uses it (``in_use`` is 0), in the
        same conditional write, so a job being created with it and its deletion cannot both win:
        Conflict when it is in use. ``release_bytes`` (owner, bytes) gives the record's stored
        bytes back in the same transaction, so no crash between the two can lose them.
        """
        kind = _TYPES[record_type]
        conditions = ["attribute_exists(pk)"]
        names: dict[str, str] = {}
        values: dict[str, Any] = {}
        if expected_status is not None:
            conditions.append("#status = :expected")
            names["#status"], values[":expected"] = "status", expected_status
        guarded = record_type in (ModelRecord, DatasetRecord)
        if guarded:
            conditions.append("(attribute_not_exists(#in_use) OR #in_use <= :zero)")
            names["#in_use"], values[":zero"] = IN_USE, 0
        key = {"pk": f"{kind}#{record_id}", "sk": META}
        delete: dict[str, Any] = {"Key": key, "ConditionExpression": " AND ".join(conditions)}
        if names:
            delete |= {"ExpressionAttributeNames": names, "ExpressionAttributeValues": values}
        if release_bytes is None:
            try:
                self._table.delete_item(**delete)
            except ClientError as error:
                if not _is_condition_failure(error):
                    raise
                return self._not_deleted(kind, record_id, key, guarded)
            return True
        owner, size = release_bytes
        codes = self._transact([{"Delete": delete}, {"Update": self._storage_change(owner, -size)}])
        if codes is None:
            return True
        if codes[0] != "ConditionalCheckFailed":
            raise Conflict(f"{kind.lower()} {record_id} could not be deleted ({', '.join(codes)}); try again")
        return self._not_deleted(kind, record_id, key, guarded)

    def _not_deleted(self, kind: str, record_id: str, key: dict[str, str], guarded: bool) -> bool:
        """After a failed delete condition: Conflict if the record is in use, else False (gone)."""
        current = self._table.get_item(Key=key, ConsistentRead=True).get("Item") or {}
        in_use = int(current.get(IN_USE, 0))
        if guarded and in_use > 0:
            raise Conflict(
                f"{kind.lower()} {record_id} is used by {in_use} active training job(s); stop them first"
            )
        return False

    def query_page(
        self,
        record_type: type[R],
        owner: str,
        *,
        status: str | None,
        limit: int,
        start_key: dict[str, Any] | None,
        filters: dict[str, str] | None = None,
    ) -> tuple[list[R], dict[str, Any] | None]:
        """One page of a caller's records, newest first (one Query on gsi1 or gsi2)."""
        kind = _TYPES[record_type]
        if status:
            index, key = "gsi2", Key("gsi2pk").eq(f"OWNER#{owner}#{kind}#{status}")
        else:
            index, key = "gsi1", Key("gsi1pk").eq(f"OWNER#{owner}#{kind}")
        kwargs: dict[str, Any] = {
            "IndexName": index,
            "KeyConditionExpression": key,
            "ScanIndexForward": False,
            "Limit": limit,
        }
        if filters:
            expression: Any = None
            for name, value in filters.items():
                clause = Attr(name).eq(value)
                expression = clause if expression is None else expression & clause
            kwargs["FilterExpression"] = expression
        if start_key:
            kwargs["ExclusiveStartKey"] = _to_dynamo(start_key)
        items: list[R] = []
        # With a filter a page may come back short: keep reading until it is full or exhausted.
        while True:
            response = self._table.query(**kwargs)
            for item in response.get("Items", []):
                items.append(
                    record_type.model_validate(
                        _from_dynamo({k: v for k, v in item.items() if k not in _KEY_ATTRIBUTES})
                    )
                )
            last = response.get("LastEvaluatedKey")
            if last is None or len(items) >= limit:
                break
            kwargs["ExclusiveStartKey"] = last
            kwargs["Limit"] = limit - len(items)
        return items[:limit], (_from_dynamo(last) if last else None)

    # ------------------------------------------------------------ jobs
    def active_captions(self) -> list[DatasetRecord]:
        """Datasets (all owners) still waiting for their captions job: the reconciler's worklist.

        They share gsi3 with active jobs under their own partition key; a save that ends the
        wait rewrites the item without the gsi3 keys, so it leaves the index.
        """
        kwargs: dict[str, Any] = {
            "IndexName": "gsi3",
            "KeyConditionExpression": Key("gsi3pk").eq(ACTIVE_CAPTIONS),
        }
        found: list[DatasetRecord] = []
        while True:
            response = self._table.query(**kwargs)
            found.extend(
                DatasetRecord.model_validate(
                    _from_dynamo({k: v for k, v in item.items() if k not in _KEY_ATTRIBUTES})
                )
                for item in response.get("Items", [])
            )
            if "LastEvaluatedKey" not in response:
                return found
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def active_jobs(self, owner: str | None = None) -> list[TrainingJobRecord]:
        """Non-terminal jobs (all owners for the reconciler, or one owner's for the cap)."""
        key: Any = Key("gsi3pk").eq(ACTIVE_JOB)
        if owner is not None:
            key = key & Key("gsi3sk").begins_with(f"{owner}#")
        kwargs: dict[str, Any] = {"IndexName": "gsi3", "KeyConditionExpression": key}
        jobs: list[TrainingJobRecord] = []
        while True:
            response = self._table.query(**kwargs)
            jobs.extend(
                TrainingJobRecord.model_validate(
                    _from_dynamo({k: v for k, v in item.items() if k not in _KEY_ATTRIBUTES})
                )
                for item in response.get("Items", [])
            )
            if "LastEvaluatedKey" not in response:
                return jobs
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def transition_job(
        self, job_id: str, target: JobStatus, *, at: str, cause: str, fields: dict[str, Any] | None = None
    ) -> TrainingJobRecord | None:
        """Move a job to ``target`` if that is forwards from its current status; None otherwise."""
        allowed = sorted(predecessors(target))
        if not allowed:
            return None
        key = {"pk": f"JOB#{job_id}", "sk": META}
        raw = self._table.get_item(Key=key, ConsistentRead=True).get("Item")
        if raw is None:
            raise NotFound(f"job {job_id} not found")
        job = _record(TrainingJobRecord, raw)
        updates = dict(fields or {})
        updates["status"] = target.value
        updates["updated_at"] = at
        updates["gsi2pk"] = f"OWNER#{job.owner}#JOB#{target.value}"
        change = StatusChange(status=target, at=at, cause=cause).model_dump(mode="json")
        names = {f"#f{i}": name for i, name in enumerate(updates)}
        values: dict[str, Any] = {f":v{i}": _to_dynamo(value) for i, value in enumerate(updates.values())}
        values[":change"] = [_to_dynamo(change)]
        values[":empty"] = []
        sets = [f"#f{i} = :v{i}" for i in range(len(updates))]
        sets.append("history = list_append(if_not_exists(history, :empty), :change)")
        expression = "SET " + ", ".join(sets)
        if is_terminal(target):
            expression += " REMOVE gsi3pk, gsi3sk"
        status_values = {f":s{i}": status.value for i, status in enumerate(allowed)}
        values |= status_values
        names["#status"] = "status"
        update = {
            "Key": key,
            "UpdateExpression": expression,
            "ConditionExpression": f"#status IN ({', '.join(status_values)})",
            "ExpressionAttributeNames": names | {"#status": "status"},
            "ExpressionAttributeValues": values,
        }
        if is_terminal(target) and raw.get(HOLDS_SLOT):
            # The end of the job and the release of what it holds are one write: exactly once.
            if self._transact([{"Update": update}, *self._job_counts(job, -1)]) is not None:
                return None
            return self.get(TrainingJobRecord, job_id, None)
        try:
            response = self._table.update_item(**update, ReturnValues="ALL_NEW")
        except ClientError as error:
            if _is_condition_failure(error):
                return None
            raise
        return _record(TrainingJobRecord, response["Attributes"])

    def _job_counts(self, job: TrainingJobRecord, delta: int) -> list[dict[str, Any]]:
        """Unconditional count changes for a job's end: the owner's active jobs and the in-use
        counts of its model and dataset (neither can be deleted while the job holds them)."""
        return [
            {
                "Update": {
                    "Key": {"pk": pk, "sk": sk},
                    "UpdateExpression": "ADD #n :delta",
                    "ExpressionAttributeNames": {"#n": name},
                    "ExpressionAttributeValues": {":delta": delta},
                }
            }
            for pk, sk, name in (
                (f"USAGE#{job.owner}", JOB_SLOTS, ACTIVE_JOBS),
                (f"MODEL#{job.base_model_id}", META, IN_USE),
                (f"DATASET#{job.dataset_id}", META, IN_USE),
            )
        ]

    def create_job(self, job: TrainingJobRecord, *, max_active: int) -> None:
        """Record a new job, taking one of the owner's ``max_active`` slots and a use of its model
        and dataset, in one transaction.

        Raises LimitExceeded when the owner's active jobs are at the cap, Conflict when the model
        or dataset stopped being ready or was deleted since it was checked.
        """
        item = _to_dynamo(job.model_dump(mode="json")) | self._keys(job) | {HOLDS_SLOT: True}
        items: list[dict[str, Any]] = [
            {"Put": {"Item": item, "ConditionExpression": "attribute_not_exists(pk)"}},
            {
                "Update": {
                    "Key": {"pk": f"USAGE#{job.owner}", "sk": JOB_SLOTS},
                    "UpdateExpression": "ADD #n :one",
                    "ConditionExpression": "attribute_not_exists(#n) OR #n < :limit",
                    "ExpressionAttributeNames": {"#n": ACTIVE_JOBS},
                    "ExpressionAttributeValues": {":one": 1, ":limit": max_active},
                }
            },
        ]
        for kind, record_id in (("MODEL", job.base_model_id), ("DATASET", job.dataset_id)):
            items.append(
                {
                    "Update": {
                        "Key": {"pk": f"{kind}#{record_id}", "sk": META},
                        "UpdateExpression": "ADD #n :one",
                        "ConditionExpression": "#status = :ready AND #owner = :owner",
                        "ExpressionAttributeNames": {"#n": IN_USE, "#status": "status", "#owner": "owner"},
                        "ExpressionAttributeValues": {
                            ":one": 1,
                            ":ready": ResourceStatus.READY.value,
                            ":owner": job.owner,
                        },
                    }
                }
            )
        codes = self._transact(items)
        if codes is None:
            return
        failed = [i for i, code in enumerate(codes) if code == "ConditionalCheckFailed"]
        if 1 in failed:
            raise LimitExceeded(
                f"you already have {self.active_job_count(job.owner)} active training job(s); "
                f"the limit is {max_active}. Wait for one to end or stop one."
            )
        if 2 in failed or 3 in failed:
            which = "base model" if 2 in failed else "dataset"
            raise Conflict(f"the {which} was deleted or changed while the job was being created; try again")
        if 0 in failed:
            raise Conflict(f"job {job.id} already exists")
        raise Conflict(f"the job could not be recorded ({', '.join(codes)}); try again")

    def active_job_count(self, owner: str) -> int:
        """The owner's counted active jobs (what the cap is checked against)."""
        item = self._table.get_item(Key={"pk": f"USAGE#{owner}", "sk": JOB_SLOTS}, ConsistentRead=True)
        return int((item.get("Item") or {}).get(ACTIVE_JOBS, 0))

    def update_job_fields(self, job_id: str, expected_status: JobStatus, fields: dict[str, Any]) -> bool:
        """Update informational fields (secondary status, progress) only while the status is unchanged."""
        names = {f"#f{i}": name for i, name in enumerate(fields)}
        values = {f":v{i}": _to_dynamo(value) for i, value in enumerate(fields.values())}
        try:
            self._table.update_item(
                Key={"pk": f"JOB#{job_id}", "sk": META},
                UpdateExpression="SET " + ", ".join(f"#f{i} = :v{i}" for i in range(len(fields))),
                ConditionExpression="#status = :expected",
                ExpressionAttributeNames=names | {"#status": "status"},
                ExpressionAttributeValues=values | {":expected": expected_status.value},
            )
        except ClientError as error:
            if _is_condition_failure(error):
                return False
            raise
        return True

    # ------------------------------------------------------------ storage accounting
    def reserve_storage(self, owner: str, size_bytes: int, limit_bytes: int | None) -> None:
        """Add to an owner's stored bytes; refuse (429) when the cap would be exceeded."""
        kwargs: dict[str, Any] = {
            "Key": {"pk": f"USAGE#{owner}", "sk": META},
            "UpdateExpression": "ADD #bytes :size",
            "ExpressionAttributeNames": {"#bytes": "bytes"},
            "ExpressionAttributeValues": {":size": size_bytes},
        }
        if limit_bytes is not None:
            kwargs["ConditionExpression"] = "attribute_not_exists(#bytes) OR #bytes <= :room"
            kwargs["ExpressionAttributeValues"][":room"] = limit_bytes - size_bytes
            if size_bytes > limit_bytes:
                raise LimitExceeded(f"storage limit: {size_bytes} bytes exceed the {limit_bytes}-byte quota")
        try:
            _retry_conflicts(lambda: self._table.update_item(**kwargs))
        except ClientError as error:
            if _is_condition_failure(error):
                used = self.storage_used(owner)
                raise LimitExceeded(
                    f"storage limit: {used} of {limit_bytes} bytes are used; {size_bytes} more do not fit. "
                    "Delete models or datasets you no longer need."
                ) from error
            raise

    def release_storage(self, owner: str, size_bytes: int) -> None:
        _retry_conflicts(lambda: self._table.update_item(**self._storage_change(owner, -size_bytes)))

    @staticmethod
    def _storage_change(owner: str, size_bytes: int) -> dict[str, Any]:
        """An unconditional change of an owner's stored bytes (UpdateItem or transaction item)."""
        return {
            "Key": {"pk": f"USAGE#{owner}", "sk": META},
            "UpdateExpression": "ADD #bytes :size",
            "ExpressionAttributeNames": {"#bytes": "bytes"},
            "ExpressionAttributeValues": {":size": size_bytes},
        }

    def storage_used(self, owner: str) -> int:
        item = self._table.get_item(Key={"pk": f"USAGE#{owner}", "sk": META}).get("Item") or {}
        return int(item.get("bytes", 0))

"""DynamoDB persistence of models, datasets and training jobs (one table, keys in table_schema).

    item          pk = "<TYPE>#<id>", sk = "META"
    gsi1          gsi1pk = "OWNER#<owner>#<TYPE>",            gsi1sk = "<created_at>#<id>"  (newest first)
    gsi2          gsi2pk = "OWNER#<owner>#<TYPE>#<status>",   gsi2sk = same                 (by status)
    gsi3 (jobs)   gsi3pk = "ACTIVE_JOB", gsi3sk = "<owner>#<created_at>#<id>"   only while active
    usage         pk = "USAGE#<owner>", sk = "META", bytes                   storage accounting

Every list is one Query, newest first; no Scan anywhere. Job status changes are conditional
writes on the current status (``status IN predecessors(target)``), so a late or duplicate event
can never move a job backwards.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any, TypeVar

from boto3.dynamodb.conditions import Attr, Key
from botocore.exceptions import ClientError
from pydantic import BaseModel

from functions.adapters.aws_clients import dynamodb_resource
from functions.domain.errors import LimitExceeded, NotFound
from functions.domain.records import DatasetRecord, ModelRecord, StatusChange, TrainingJobRecord
from functions.domain.statuses import JobStatus, is_terminal, predecessors

R = TypeVar("R", bound=BaseModel)
META = "META"
ACTIVE_JOB = "ACTIVE_JOB"
_TYPES: dict[type[BaseModel], str] = {
    ModelRecord: "MODEL",
    DatasetRecord: "DATASET",
    TrainingJobRecord: "JOB",
}
_KEY_ATTRIBUTES = ("pk", "sk", "gsi1pk", "gsi1sk", "gsi2pk", "gsi2sk", "gsi3pk", "gsi3sk")


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


class Repository:
    def __init__(self, table_name: str) -> None:
        self.table_name = table_name

    @property
    def _table(self) -> Any:
        return dynamodb_resource().Table(self.table_name)

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
        return keys

    def create(self, record: BaseModel) -> None:
        item = _to_dynamo(record.model_dump(mode="json")) | self._keys(record)
        self._table.put_item(Item=item, ConditionExpression=Attr("pk").not_exists())

    def create_if_absent(self, record: BaseModel) -> bool:
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
        self, record_type: type[BaseModel], record_id: str, *, expected_status: str | None = None
    ) -> bool:
        kind = _TYPES[record_type]
        condition: Any = Attr("pk").exists()
        if expected_status is not None:
            condition = condition & Attr("status").eq(expected_status)
        try:
            self._table.delete_item(
                Key={"pk": f"{kind}#{record_id}", "sk": META}, ConditionExpression=condition
            )
        except ClientError as error:
            if _is_condition_failure(error):
                return False
            raise
        return True

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
        job = self.get(TrainingJobRecord, job_id, None)
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
        try:
            response = self._table.update_item(
                Key={"pk": f"JOB#{job_id}", "sk": META},
                UpdateExpression=expression,
                ConditionExpression=f"#status IN ({', '.join(status_values)})",
                ExpressionAttributeNames=names | {"#status": "status"},
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )
        except ClientError as error:
            if _is_condition_failure(error):
                return None
            raise
        item = response["Attributes"]
        return TrainingJobRecord.model_validate(
            _from_dynamo({k: v for k, v in item.items() if k not in _KEY_ATTRIBUTES})
        )

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
            self._table.update_item(**kwargs)
        except ClientError as error:
            if _is_condition_failure(error):
                used = self.storage_used(owner)
                raise LimitExceeded(
                    f"storage limit: {used} of {limit_bytes} bytes are used; {size_bytes} more do not fit. "
                    "Delete models or datasets you no longer need."
                ) from error
            raise

    def release_storage(self, owner: str, size_bytes: int) -> None:
        self._table.update_item(
            Key={"pk": f"USAGE#{owner}", "sk": META},
            UpdateExpression="ADD #bytes :size",
            ExpressionAttributeNames={"#bytes": "bytes"},
            ExpressionAttributeValues={":size": -size_bytes},
        )

    def storage_used(self, owner: str) -> int:
        item = self._table.get_item(Key={"pk": f"USAGE#{owner}", "sk": META}).get("Item") or {}
        return int(item.get("bytes", 0))

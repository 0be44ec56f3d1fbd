"""Key schema of the service's DynamoDB tables, defined once.

The CDK stack builds the tables from it and the local runtime creates the same tables in the
emulator from it, so the two can never disagree. What the keys *mean* is documented in
``docs/ARCHITECTURE.md`` and implemented by the repositories in this package.
"""

from __future__ import annotations

from dataclasses import dataclass

PARTITION_KEY = "pk"
SORT_KEY = "sk"


@dataclass(frozen=True)
class GlobalIndex:
    name: str
    partition_key: str
    sort_key: str


GLOBAL_INDEXES: tuple[GlobalIndex, ...] = (
    GlobalIndex("gsi1", "gsi1pk", "gsi1sk"),  # a caller's records of one type, newest first
    GlobalIndex("gsi2", "gsi2pk", "gsi2sk"),  # ... of one type and status, newest first
    GlobalIndex("gsi3", "gsi3pk", "gsi3sk"),  # sparse: active jobs (reconciler, concurrency cap)
)

# Powertools idempotency persistence layer defaults.
IDEMPOTENCY_PARTITION_KEY = "id"
IDEMPOTENCY_TTL_ATTRIBUTE = "expiration"


def create_table_kwargs(table_name: str) -> dict[str, object]:
    """``CreateTable`` arguments for the main table (used by the local runtime and tests)."""
    attributes = {PARTITION_KEY, SORT_KEY} | {
        name for index in GLOBAL_INDEXES for name in (index.partition_key, index.sort_key)
    }
    return {
        "TableName": table_name,
        "BillingMode": "PAY_PER_REQUEST",
        "KeySchema": [
            {"AttributeName": PARTITION_KEY, "KeyType": "HASH"},
            {"AttributeName": SORT_KEY, "KeyType": "RANGE"},
        ],
        "AttributeDefinitions": [{"AttributeName": a, "AttributeType": "S"} for a in sorted(attributes)],
        "GlobalSecondaryIndexes": [
            {
                "IndexName": index.name,
                "KeySchema": [
                    {"AttributeName": index.partition_key, "KeyType": "HASH"},
                    {"AttributeName": index.sort_key, "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
            for index in GLOBAL_INDEXES
        ],
    }


def create_idempotency_table_kwargs(table_name: str) -> dict[str, object]:
    return {
        "TableName": table_name,
        "BillingMode": "PAY_PER_REQUEST",
        "KeySchema": [{"AttributeName": IDEMPOTENCY_PARTITION_KEY, "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": IDEMPOTENCY_PARTITION_KEY, "AttributeType": "S"}],
    }

"""Signed page tokens around Repository.list (one helper for every list route)."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel

from functions.domain.errors import invalid
from functions.domain.page_tokens import decode_token, encode_token
from functions.services.context import ServiceContext

R = TypeVar("R", bound=BaseModel)
MAX_PAGE_SIZE = 100


def list_page(
    ctx: ServiceContext,
    record_type: type[R],
    owner: str,
    *,
    status: str | None,
    limit: int,
    next_token: str | None,
    filters: dict[str, str] | None = None,
) -> tuple[list[R], str | None]:
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise invalid("limit", f"must be between 1 and {MAX_PAGE_SIZE}")
    query = f"{record_type.__name__}|{status or ''}|{sorted((filters or {}).items())}"
    start: dict[str, Any] | None = (
        decode_token(ctx.page_secret, owner, query, next_token) if next_token else None
    )
    items, last = ctx.repository.query_page(
        record_type, owner, status=status, limit=limit, start_key=start, filters=filters
    )
    token = encode_token(ctx.page_secret, owner, query, last) if last else None
    return items, token

"""What every resource's shapes share: names, ids, the one error body, and record -> view."""

from __future__ import annotations

import unicodedata
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Field

MAX_NAME_LENGTH = 128


def _clean_name(value: str) -> str:
    """Display names: NFC, no control/format characters (bidi overrides, zero-width), not blank."""
    value = unicodedata.normalize("NFC", value).strip()
    if not value:
        raise ValueError("must not be blank")
    if any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Cn") for c in value):
        raise ValueError("must not contain control, invisible or unassigned characters")
    return value


DisplayName = Annotated[
    str,
    # The pattern says "not blank"; the characters refused (Unicode categories C*) are in its
    # description: JSON Schema's portable regex dialect has no \p{...} classes.
    Field(
        min_length=1,
        max_length=MAX_NAME_LENGTH,
        pattern=r"\S",
        description="a display name: not blank; no control, format (invisible), private-use, surrogate "
        "or unassigned characters (Unicode categories Cc, Cf, Cs, Co, Cn)",
    ),
    AfterValidator(_clean_name),
]
RecordId = Annotated[str, Field(pattern=r"^[0-9a-z]{26}$", description="a record id")]


class ErrorDetail(BaseModel):
    field: str
    problem: str


class ErrorInfo(BaseModel):
    code: str = Field(description="stable machine-readable code, e.g. INVALID_INPUT, NOT_FOUND")
    message: str
    details: list[ErrorDetail] = Field(default_factory=list)


class ErrorBody(BaseModel):
    """The one error shape of every non-2xx response."""

    error: ErrorInfo


def view_of(record: BaseModel, view: type[BaseModel], **extra: Any) -> Any:
    """Project a stored record onto its API view (drops internal fields)."""
    data = record.model_dump(mode="json")
    data.update(extra)
    return view.model_validate({k: v for k, v in data.items() if k in view.model_fields})

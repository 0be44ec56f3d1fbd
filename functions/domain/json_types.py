"""Request models whose numbers and booleans follow JSON Schema, strictly.

The API's schema says ``integer``/``boolean``, so a request must send a JSON number or boolean:
``"12"`` is not a size, ``true`` is not 1, ``"yes"`` is not true (pydantic's lax mode would coerce
all three). JSON Schema counts ``12.0`` as an integer (a number with a zero fractional part,
https://json-schema.org/draft/2020-12/json-schema-core#section-4.2.1), so it is accepted as 12.
Integers are checked by a "before" validator on the model rather than by an annotated type, so the
fields' JSON Schema (``minimum``/``maximum``) stays what pydantic generates for ``int``.
"""

from __future__ import annotations

import types
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, StrictBool, StrictFloat, ValidationInfo, field_validator

JsonBool = StrictBool
JsonFloat = StrictFloat  # accepts integers (JSON numbers), refuses strings and booleans


def json_integer(value: object) -> object:
    """``value`` as a JSON integer, or ValueError (None passes: optional fields decide on it)."""
    if value is None:
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be a JSON integer (a number, not a string or boolean)")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError("must be a whole number")
        return int(value)
    return value


def _is_integer_field(annotation: Any) -> bool:
    if annotation is int:
        return True
    return get_origin(annotation) in (Union, types.UnionType) and int in get_args(annotation)


class JsonRequestModel(BaseModel):
    """Base of request bodies: integer fields take JSON integers only (see the module docstring)."""

    @field_validator("*", mode="before")
    @classmethod
    def _strict_integers(cls, value: object, info: ValidationInfo) -> object:
        field = cls.model_fields.get(info.field_name or "")
        if field is not None and _is_integer_field(field.annotation):
            return json_integer(value)
        return value


__all__ = ["JsonBool", "JsonFloat", "JsonRequestModel", "json_integer"]

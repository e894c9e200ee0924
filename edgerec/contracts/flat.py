"""The raw log contract in columnar form: one flat row shape for every event type.

Derived from the pydantic models, so the contract is stated once; Spark and parquet use this shape.
"""

from __future__ import annotations

import types
import typing
from typing import Any, Literal, get_args, get_origin

import pyarrow as pa
import typing_extensions
from pydantic import BaseModel

from edgerec.contracts.raw_log import EVENT_MODELS

_SCALARS = {str: pa.string(), int: pa.int64(), float: pa.float64(), bool: pa.bool_()}


def _arrow_type(annotation: Any) -> pa.DataType:
    origin = get_origin(annotation)
    if origin is typing.Annotated:
        return _arrow_type(get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        (inner,) = [a for a in get_args(annotation) if a is not type(None)]
        return _arrow_type(inner)
    if origin is Literal:
        return pa.string()
    if origin is list:
        return pa.list_(_arrow_type(get_args(annotation)[0]))
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return pa.struct([pa.field(n, _arrow_type(f.annotation)) for n, f in annotation.model_fields.items()])
    if typing_extensions.is_typeddict(annotation):
        hints = typing.get_type_hints(annotation, include_extras=True)
        return pa.struct([pa.field(n, _arrow_type(_required(h))) for n, h in hints.items()])
    return _SCALARS[annotation]


def _required(hint: Any) -> Any:
    return get_args(hint)[0] if get_origin(hint) in (typing.NotRequired, typing.Required) else hint


def _flat_schema() -> pa.Schema:
    fields: dict[str, pa.Field] = {}
    for model in EVENT_MODELS.values():
        for name, field in model.model_fields.items():
            fields.setdefault(name, pa.field(name, _arrow_type(field.annotation)))
    return pa.schema(list(fields.values()))


FLAT_EVENT_SCHEMA: pa.Schema = _flat_schema()
FLAT_EVENT_FIELDS: tuple[str, ...] = tuple(FLAT_EVENT_SCHEMA.names)


def flatten(event: BaseModel) -> dict:
    """One event as a flat row: every field of FLAT_EVENT_SCHEMA, None where its type has no such field."""
    values = event.__dict__  # validated already; nested models are the only values that need dumping
    row = {name: values.get(name) for name in FLAT_EVENT_FIELDS}
    # an event of no page request, or of no client session, may say so with "" as well as null: both mean none
    # downstream (the requests job would take "" for a page request of its own, sessionize for one session of
    # every such user's events)
    for name in ("request_id", "session_id"):
        row[name] = row[name] or None
    for name in _NESTED_MODELS:
        if isinstance(row[name], BaseModel):
            row[name] = row[name].__dict__
    return row


_NESTED_MODELS = tuple(f.name for f in FLAT_EVENT_SCHEMA if pa.types.is_struct(f.type))

"""Table rows as JSON values and back, for the catalogue records (catalogue.py).

A row is written with every column of its table, by the column's type (dates as ISO text,
bytes as base64); read back, columns the table no longer has are ignored and columns it has
gained take their defaults, so records written by an older version still recover.
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import DateTime, LargeBinary, inspect
from sqlalchemy.orm import Session

from opencbr.core.db import Base

__all__ = ["from_json", "insert_missing", "to_json"]

Row = TypeVar("Row", bound=Base)


def to_json(row: Base, *, leave_out: tuple[str, ...] = ()) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for column in row.__table__.columns:
        if column.key in leave_out:
            continue
        value = getattr(row, column.key)
        if value is not None and isinstance(column.type, DateTime):
            value = value.isoformat()
        elif value is not None and isinstance(column.type, LargeBinary):
            value = base64.b64encode(value).decode()
        values[column.key] = value
    return values


def from_json(model: type[Row], values: dict[str, Any], **overrides: Any) -> Row:
    columns = {c.key: c for c in model.__table__.columns}
    fields: dict[str, Any] = {}
    for key, value in values.items():
        column = columns.get(key)
        if column is None:
            continue
        if value is not None and isinstance(column.type, DateTime):
            value = datetime.fromisoformat(value)
        elif value is not None and isinstance(column.type, LargeBinary):
            value = base64.b64decode(value)
        fields[key] = value
    fields.update(overrides)
    return model(**fields)


def insert_missing(session: Session, row: Base) -> bool:
    """Add `row` unless a row with its primary key exists (a recovery run again); True if added."""
    identity = inspect(row).mapper.primary_key_from_instance(row)
    if session.get(type(row), tuple(identity)) is not None:
        return False
    session.add(row)
    return True

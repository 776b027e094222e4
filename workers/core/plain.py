"""`plain(obj)`: `dataclasses.asdict` without its deep copies (the same result for Warden's frozen
dataclasses of strings, numbers, enums and tuples), at a fraction of the cost. Rooms and events are
turned into JSON on every write, so this is on the worker's hot path."""

from __future__ import annotations

from dataclasses import fields, is_dataclass
from typing import Any

_ATOMIC = {str, int, float, bool, type(None)}
_FIELDS: dict[type, tuple[str, ...] | None] = {}  # None: not a dataclass


def plain(value: Any) -> Any:
    """Dataclasses as dicts, recursively; tuples stay tuples and lists lists, as `asdict` leaves them."""
    cls = type(value)
    if cls in _ATOMIC:
        return value
    if cls is tuple or cls is list:
        return cls(plain(item) for item in value)
    if cls is dict:
        return {key: plain(item) for key, item in value.items()}
    try:
        names = _FIELDS[cls]
    except KeyError:
        names = _FIELDS[cls] = tuple(f.name for f in fields(cls)) if is_dataclass(cls) else None
    if names is None:
        return value  # an enum, or another immutable value
    return {name: plain(getattr(value, name)) for name in names}


def as_dict(value: Any) -> dict[str, Any]:
    """`plain` of a dataclass instance."""
    result = plain(value)
    if not isinstance(result, dict):
        raise TypeError(f"not a dataclass: {type(value).__name__}")
    return result

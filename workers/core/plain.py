"""Warden's frozen dataclasses as plain data and back: one way out, one way in.

`plain(obj)` / `as_dict(obj)` is `dataclasses.asdict` without its deep copies (the same result for
Warden's frozen dataclasses of strings, numbers, enums and tuples), at a fraction of the cost. Rooms and
events are turned into JSON on every write, so this is on the worker's hot path.

`from_plain(cls, data)` is its inverse, read off the dataclasses' field types (`typing.get_type_hints`,
compiled once per type into a decoder), so that a new field or a new stored type needs no hand-written
reader. What it takes:

- a dataclass from a dict: a field missing from the dict (a row written before the field existed)
  takes its default; a key the dataclass lacks (a row written by a newer version, during a rolling
  deploy or after a rollback) is ignored, as protobuf ignores unknown fields. A missing field without a
  default is an error;
- enums from their values; `str`, `int`, `bool` as they are, `float` also from a whole number (JSON
  writes `1.0` as `1.0`, but older rows held whole seconds); tuples, of any length or of fixed length,
  from lists (JSON has no tuples) or tuples (ARQ pickles job arguments); `X | None`;
- a union of dataclasses (the room's actions, the outgoing calls) by the class name in the dict's
  `"action"` key (`TAG`), which `tagged` writes, or by a name the class was stored under before it was
  renamed (`names`: its `FORMERLY`).

What it cannot read raises `UnreadableRecord`, naming the field; a field type it does not know is a
`TypeError` when its decoder is first built, so a new stored type meets it in the unit tests.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable
from dataclasses import MISSING, fields, is_dataclass
from enum import Enum
from typing import Any, TypeVar, overload

from workers.core.errors import UnreadableRecord

T = TypeVar("T")

TAG = "action"  # the key naming a tagged dict's class (written by `tagged`)

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


def names(cls: type) -> tuple[str, ...]:
    """The tags a class is read by: its name, then those it had when older rows and jobs were written
    (a `FORMERLY` class variable), so that a rename never strands what is stored."""
    return (cls.__name__, *getattr(cls, "FORMERLY", ()))


def tagged(value: Any) -> dict[str, Any]:
    """`as_dict` with the class name under `TAG`: one member of a union, as `from_plain` tells it apart."""
    return {TAG: type(value).__name__, **as_dict(value)}


Decode = Callable[[Any], Any]


class _Wrong(Exception):
    """A value that does not fit its type, and where it sits (field names and indexes, innermost last)."""

    def __init__(self, why: str, where: tuple[str, ...] = ()) -> None:
        super().__init__(why)
        self.why = why
        self.where = where

    def inside(self, name: str) -> _Wrong:
        return _Wrong(self.why, (name, *self.where))


@overload
def from_plain(cls: type[T], data: Any) -> T: ...
@overload
def from_plain(cls: object, data: Any) -> Any: ...  # a union (`Action`): no `type[T]` can name it


def from_plain(cls: object, data: Any) -> Any:
    """The `cls` (a dataclass, or a union of dataclasses told apart by `TAG`) that `data` describes:
    the inverse of `as_dict` (of `tagged` for a union), also for what older versions stored."""
    try:
        return _decoder(cls)(data)
    except _Wrong as wrong:
        where = "".join(f"[{w}]" if w.isdigit() else f".{w}" for w in wrong.where)
        raise UnreadableRecord(f"{_name(cls)}{where}: {wrong.why}") from None


_DECODERS: dict[object, Decode] = {}


def _decoder(tp: object) -> Decode:
    """The decoder of type `tp`, built on first use (a dict lookup after that)."""
    try:
        return _DECODERS[tp]
    except KeyError:
        decode = _DECODERS[tp] = _build(tp)
        return decode


def _build(tp: object) -> Decode:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is types.UnionType or origin is typing.Union:
        return _union(args)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return _tuple_of(args[0])
        return _fixed_tuple(tuple(_decoder(a) for a in args))
    if isinstance(tp, type):
        if is_dataclass(tp):
            return _dataclass(tp)
        if issubclass(tp, Enum):
            return _enum(tp)
        if tp in _SIMPLE:
            return _SIMPLE[tp]
    raise TypeError(f"from_plain cannot decode {tp!r}")


def _dataclass(cls: type) -> Decode:
    hints = typing.get_type_hints(cls)
    specs = tuple(
        (
            f.name,
            hints[f.name] if hints[f.name] in _SIMPLE else None,  # checked in line: rooms are read per write
            _decoder(hints[f.name]),
            f.default is MISSING and f.default_factory is MISSING,
        )
        for f in fields(cls)
        if f.init
    )

    def decode(data: Any) -> Any:
        if not isinstance(data, dict):
            raise _Wrong(f"expected an object, got {_what(data)}")
        values = {}
        for name, simple, field_decode, required in specs:
            if name not in data:
                if required:
                    raise _Wrong("missing", (name,))
                continue
            value = data[name]
            if simple is not None and isinstance(value, simple):
                values[name] = value
                continue
            try:
                values[name] = field_decode(value)
            except _Wrong as wrong:
                raise wrong.inside(name) from None
        try:
            return cls(**values)
        except (TypeError, ValueError) as exc:  # a check of the class's own (`__post_init__`)
            raise _Wrong(str(exc)) from None

    return decode


def _union(members: tuple[Any, ...]) -> Decode:
    """`X | None`, or dataclasses told apart by their `TAG`. `as_dict` tags nothing, so a union nested in
    a stored dataclass must be written with `tagged`: without a tag its decoder fails, loudly."""
    optional = type(None) in members
    rest = tuple(m for m in members if m is not type(None))
    if len(rest) == 1:
        one = _decoder(rest[0])
    elif all(isinstance(m, type) and is_dataclass(m) for m in rest):
        one = _by_tag({name: _decoder(m) for m in rest for name in names(m)})
    else:
        raise TypeError(f"from_plain cannot tell apart the members of {members!r}")
    if not optional:
        return one
    return lambda value: None if value is None else one(value)


def _by_tag(decoders: dict[str, Decode]) -> Decode:
    def decode(data: Any) -> Any:
        name = data.get(TAG) if isinstance(data, dict) else None
        if not isinstance(name, str) or name not in decoders:
            raise _Wrong(f"{TAG} {name!r} is none of {', '.join(decoders)}")
        return decoders[name](data)

    return decode


def _tuple_of(tp: Any) -> Decode:
    item = _decoder(tp)
    simple = tp if tp in _SIMPLE else None

    def decode(value: Any) -> Any:
        if not isinstance(value, list | tuple):
            raise _Wrong(f"expected a list, got {_what(value)}")
        if simple is not None and all(isinstance(v, simple) for v in value):
            return tuple(value)
        return tuple(_at(item, i, v) for i, v in enumerate(value))

    return decode


def _fixed_tuple(items: tuple[Decode, ...]) -> Decode:
    def decode(value: Any) -> Any:
        if not isinstance(value, list | tuple) or len(value) != len(items):
            raise _Wrong(f"expected a list of {len(items)}, got {_what(value)}")
        return tuple(_at(item, i, v) for i, (item, v) in enumerate(zip(items, value, strict=True)))

    return decode


def _at(decode: Decode, index: int, value: Any) -> Any:
    try:
        return decode(value)
    except _Wrong as wrong:
        raise wrong.inside(str(index)) from None


def _enum(cls: type[Enum]) -> Decode:
    def decode(value: Any) -> Any:
        try:
            return cls(value)
        except ValueError:
            raise _Wrong(f"not a {cls.__name__}") from None  # the value unsaid, as in every Warden error

    return decode


def _atom(*accepted: type, convert: Callable[[Any], Any] | None = None) -> Decode:
    def decode(value: Any) -> Any:
        if not isinstance(value, accepted):
            raise _Wrong(f"expected {' or '.join(a.__name__ for a in accepted)}, got {_what(value)}")
        return convert(value) if convert is not None else value

    return decode


_SIMPLE: dict[type, Decode] = {
    str: _atom(str),
    int: _atom(int),  # a bool too, as mypy lets one stand for an int
    float: _atom(float, int, convert=float),
    bool: _atom(bool),
}


def _what(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _name(tp: object) -> str:
    return tp.__name__ if isinstance(tp, type) else "union"  # its members are named by `_by_tag`


def strings_mapped(value: Any, change: Callable[[str], str], *, keys: bool = False) -> Any:
    """JSON `value` with `change` applied to every string in it (to the keys of objects too, with
    `keys`); lists and tuples come back as lists."""
    if isinstance(value, str):
        return change(value)
    if isinstance(value, list | tuple):
        return [strings_mapped(item, change, keys=keys) for item in value]
    if isinstance(value, dict):
        return {
            (change(key) if keys and isinstance(key, str) else key): strings_mapped(item, change, keys=keys)
            for key, item in value.items()
        }
    return value

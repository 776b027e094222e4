"""Read a webhook body as protojson, without protobuf's parser when the body is ordinary.

`loads_webhook(body)` returns the WebhookEvent as a dict of JSON values, as `workers.adapters.webhook.
from_webhook_json` reduces it, or raises `MalformedEvent` (answered 400). A body is taken straight from
`json.loads` when every key is a field of the message (by its JSON name), and every value has a type
protobuf's `json_format.Parse` accepts for that field *without conversion*: strings for strings,
booleans for bools, integers in range (or strings of digits) for integers, known names or numbers for
enums, objects for messages and maps, arrays for repeated fields. Anything else — an unknown key, a
null, a float, bytes, a well-known type, two fields of one oneof, a duplicate key — goes to `Parse`
(then `MessageToDict`), whose verdict stands. So every body gets `Parse`'s answer; ordinary ones get it
at a fraction of the cost (`tests/unit/test_webhook_json.py` compares the two over generated bodies).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.json_format import MessageToDict, Parse, ParseError
from livekit.protocol.webhook import WebhookEvent

from workers.core.errors import MalformedEvent

_RANGES = {
    FieldDescriptor.CPPTYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.CPPTYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.CPPTYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.CPPTYPE_UINT64: (0, 2**64 - 1),
}
_DIGITS = re.compile(r"-?[0-9]{1,20}")
_SURROGATE = re.compile("[\ud800-\udfff]")  # protobuf refuses unpaired surrogates in strings

# Per message type (full name), its check: built once from the descriptors, so a body's check is a
# walk of plain closures (no descriptor attribute read per value: those were the check's largest cost).
_Check = Callable[[Any], bool]
_CHECKS: dict[str, _Check] = {}


def loads_webhook(body: bytes) -> dict[str, Any]:
    """The body as protojson values (see the module's doc), or `MalformedEvent`."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedEvent("body is not a LiveKit WebhookEvent") from None
    try:
        data = _DECODER.decode(text)
    except (ValueError, RecursionError):
        data = None  # Parse gives the verdict below
    try:
        if type(data) is dict and _WEBHOOK(data):
            return data
    except RecursionError:  # nested deeper than the check can follow: Parse decides
        pass
    try:
        proto = Parse(text, WebhookEvent(), ignore_unknown_fields=True)
    except (ParseError, RecursionError, ValueError, SystemError):
        # SystemError: protobuf's C parser, given a lone surrogate ("\ud800") where it wants an enum
        # name, loses its own UnicodeEncodeError that way. A 400 like any other unreadable body.
        raise MalformedEvent("body is not a LiveKit WebhookEvent") from None
    result: dict[str, Any] = MessageToDict(proto)
    return result


class _Duplicate(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    data = dict(pairs)
    if len(data) != len(pairs):
        raise _Duplicate  # protobuf refuses duplicate keys
    return data


_DECODER = json.JSONDecoder(object_pairs_hook=_no_duplicates)  # json.loads(...) would build one per call


def _conforms(data: Any, descriptor: Any) -> bool:
    """Whether `data` is a message of `descriptor` that `Parse` takes as it is (see the module's doc)."""
    return _message(descriptor)(data)


def _message(descriptor: Any) -> _Check:
    """The check of a message: a dict whose every key is a field's JSON name, its value not null and of
    that field's type, and at most one field of each oneof."""
    check = _CHECKS.get(descriptor.full_name)
    if check is not None:
        return check
    fields: dict[str, _Check] = {}
    oneofs = [frozenset(f.json_name for f in o.fields) for o in descriptor.oneofs if len(o.fields) > 1]

    def conforms(data: Any) -> bool:
        if type(data) is not dict:
            return False
        for key, value in data.items():
            field_check = fields.get(key)
            if field_check is None or value is None or not field_check(value):
                return False
        return not oneofs or not any(len(group & data.keys()) > 1 for group in oneofs)

    _CHECKS[descriptor.full_name] = conforms  # before its fields': a message may hold its own type
    for f in descriptor.fields:
        fields[f.json_name] = _field(f)
    return conforms


def _field(field: Any) -> _Check:
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        entry_fields = field.message_type.fields_by_name
        if entry_fields["key"].cpp_type != FieldDescriptor.CPPTYPE_STRING:
            return _never
        value_check = _value(entry_fields["value"])
        return lambda value: (
            type(value) is dict and all(_string(k) and value_check(v) for k, v in value.items())
        )
    item = _value(field)
    if _repeated(field):
        return lambda value: type(value) is list and all(item(v) for v in value)
    return item


def _never(value: Any) -> bool:
    return False


def _repeated(field: Any) -> bool:
    repeated = getattr(field, "is_repeated", None)  # protobuf 6+; `label` before
    return bool(repeated if repeated is not None else field.label == FieldDescriptor.LABEL_REPEATED)


def _string(value: Any) -> bool:
    return type(value) is str and (value.isascii() or not _SURROGATE.search(value))


def _boolean(value: Any) -> bool:
    return type(value) is bool


def _value(field: Any) -> _Check:
    """The check of one value of `field` (an item of a repeated field, a map's value)."""
    cpp = field.cpp_type
    if cpp == FieldDescriptor.CPPTYPE_STRING:
        return _string if field.type == FieldDescriptor.TYPE_STRING else _never
    if cpp == FieldDescriptor.CPPTYPE_MESSAGE:
        message = field.message_type
        return _never if message.full_name.startswith("google.") else _message(message)
    if cpp == FieldDescriptor.CPPTYPE_BOOL:
        return _boolean
    if cpp == FieldDescriptor.CPPTYPE_ENUM:
        enum = field.enum_type
        if enum is None:
            return _never
        names, numbers = frozenset(enum.values_by_name), frozenset(enum.values_by_number)
        return lambda value: value in names if type(value) is str else type(value) is int and value in numbers
    bounds = _RANGES.get(cpp)
    if bounds is None:
        return _never  # float and double: left to Parse
    low, high = bounds

    def integer(value: Any) -> bool:
        if type(value) is str:
            if not _DIGITS.fullmatch(value):
                return False
            value = int(value)
        return type(value) is int and low <= value <= high

    return integer


_WEBHOOK = _message(WebhookEvent.DESCRIPTOR)

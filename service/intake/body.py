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

# Per message type: JSON name -> (field, is_map), and the groups of fields that exclude each other.
_Fields = dict[str, tuple[Any, bool]]  # protobuf's descriptor types vary between its versions
_TABLES: dict[str, tuple[_Fields, list[frozenset[str]]]] = {}


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
        if type(data) is dict and _conforms(data, WebhookEvent.DESCRIPTOR):
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


def _table(descriptor: Any) -> tuple[_Fields, list[frozenset[str]]]:
    table = _TABLES.get(descriptor.full_name)
    if table is None:
        fields = {
            f.json_name: (f, f.message_type is not None and f.message_type.GetOptions().map_entry)
            for f in descriptor.fields
        }
        oneofs = [frozenset(f.json_name for f in o.fields) for o in descriptor.oneofs if len(o.fields) > 1]
        table = _TABLES[descriptor.full_name] = (fields, oneofs)
    return table


def _conforms(data: dict[str, Any], descriptor: Any) -> bool:
    fields, oneofs = _table(descriptor)
    for key, value in data.items():
        entry = fields.get(key)
        if entry is None or value is None:
            return False
        field, is_map = entry
        if is_map:
            if type(value) is not dict:
                return False
            entry_fields = field.message_type.fields_by_name
            value_field = entry_fields["value"]
            if entry_fields["key"].cpp_type != FieldDescriptor.CPPTYPE_STRING:
                return False
            if not all(_string(k) and _value(v, value_field) for k, v in value.items()):
                return False
        elif _repeated(field):
            if type(value) is not list or not all(_value(item, field) for item in value):
                return False
        elif not _value(value, field):
            return False
    return not any(len(group & data.keys()) > 1 for group in oneofs)


def _repeated(field: Any) -> bool:
    repeated = getattr(field, "is_repeated", None)  # protobuf 6+; `label` before
    return bool(repeated if repeated is not None else field.label == FieldDescriptor.LABEL_REPEATED)


def _string(value: Any) -> bool:
    return type(value) is str and (value.isascii() or not _SURROGATE.search(value))


def _value(value: Any, field: Any) -> bool:
    cpp = field.cpp_type
    if cpp == FieldDescriptor.CPPTYPE_STRING:
        return field.type == FieldDescriptor.TYPE_STRING and _string(value)
    if cpp == FieldDescriptor.CPPTYPE_MESSAGE:
        message = field.message_type
        return (
            type(value) is dict and not message.full_name.startswith("google.") and _conforms(value, message)
        )
    if cpp == FieldDescriptor.CPPTYPE_BOOL:
        return type(value) is bool
    if cpp == FieldDescriptor.CPPTYPE_ENUM:
        enum = field.enum_type
        if enum is None:
            return False
        if type(value) is str:
            return value in enum.values_by_name
        return type(value) is int and value in enum.values_by_number
    bounds = _RANGES.get(cpp)
    if bounds is None:
        return False  # float and double: left to Parse
    if type(value) is str:
        if not _DIGITS.fullmatch(value):
            return False
        value = int(value)
    return type(value) is int and bounds[0] <= value <= bounds[1]

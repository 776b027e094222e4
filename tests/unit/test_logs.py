"""Log lines as JSON and as text, inert and bounded whatever values they carry (issue 24: one record is
one line, escape sequences shown, numbers masked, long values clipped), and the dev key's PyJWT warning
filtered for livekit-server --dev's pair only."""

from __future__ import annotations

import json
import logging
import sys
import warnings

import jwt
import pytest

from workers.logs import TEXT_FORMAT, JsonFormatter, TextFormatter, allow_dev_keys

FORGING = "evil\n2026-12-07 03:00:00,000 ERROR warden.worker: FORGED\x1b[2J\x1b]0;pwned\x07"


def test_a_json_line_carries_the_record_and_its_room_event_and_outcome() -> None:
    record = logging.LogRecord("warden.worker", logging.INFO, __file__, 1, "%s: %s", ("call-1", "ok"), None)
    record.room, record.event, record.outcome = "call-1", "participant_joined", "applied"
    entry = json.loads(JsonFormatter("worker").format(record))
    assert entry.pop("time").endswith("+00:00")
    assert entry == {
        "level": "INFO",
        "process": "worker",
        "logger": "warden.worker",
        "message": "call-1: ok",
        "room": "call-1",
        "event": "participant_joined",
        "outcome": "applied",
    }


def test_a_traceback_stays_on_its_line() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("warden.web", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    line = JsonFormatter("web").format(record)
    assert "\n" not in line
    assert "ValueError: boom" in json.loads(line)["exception"]


def _warns(key: str, secret: str) -> bool:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        allow_dev_keys({key: secret})
        jwt.encode({"iss": key}, secret, algorithm="HS256")
    return any(issubclass(w.category, jwt.InsecureKeyLengthWarning) for w in caught)


def test_only_livekit_server_dev_keys_lose_the_short_key_warning() -> None:
    assert not _warns("devkey", "secret")
    assert _warns("prodkey", "secret")  # a production key this short is still warned about
    assert _warns("devkey", "another-short")


def _record(msg: str, *args: object, exc_info: bool = False) -> logging.LogRecord:
    return logging.LogRecord(
        "warden.worker", logging.INFO, __file__, 1, msg, args, sys.exc_info() if exc_info else None
    )


def test_a_text_line_is_one_line_whatever_its_values_hold() -> None:
    line = TextFormatter().format(_record("%s room=%s: %s", "room_started", FORGING, "applied"))
    assert "\n" not in line and "\x1b" not in line and "\x07" not in line
    assert line.endswith(
        r"INFO warden.worker: room_started room=evil\n2026-12-07 03:00:00,000 ERROR warden.worker: "
        r"FORGED\x1b[2J\x1b]0;pwned\x07: applied"
    )


@pytest.mark.parametrize("raw", ["\r", "\x85", "\u2028", "\u202e", "\x9b"])
def test_text_and_json_lines_write_no_raw_control_character(raw: str) -> None:
    record = _record("room %s", f"a{raw}b")
    assert raw not in TextFormatter().format(record)
    line = JsonFormatter("worker").format(record)
    assert raw not in line and json.loads(line)["message"] == f"room a{raw}b"  # JSON: the same value


def test_a_text_line_is_formatted_as_the_standard_formatter_does() -> None:
    record = _record("%s: %d rooms", "call-1", 3)
    assert TextFormatter().format(record) == logging.Formatter(TEXT_FORMAT).format(record)


def test_a_traceback_keeps_its_lines_but_not_those_its_message_brings() -> None:
    try:
        try:
            raise KeyError("inner")
        except KeyError as exc:
            raise ValueError(f"room {FORGING}") from exc
    except ValueError:
        record = _record("failed", exc_info=True)
    text = TextFormatter().format(record)
    lines = text.splitlines()
    assert lines[0].endswith("INFO warden.worker: failed")
    assert lines[1] == "Traceback (most recent call last):" and "direct cause" in text
    assert lines[-1] == (
        r"ValueError: room evil\n2026-12-07 03:00:00,000 ERROR warden.worker: FORGED\x1b[2J\x1b]0;pwned\x07"
    )
    assert not [line for line in lines if line.startswith("2026-12-07 03:00:00")]


def test_an_exception_groups_messages_are_escaped_too() -> None:
    try:
        raise ExceptionGroup("two", [ValueError(f"a {FORGING}"), TypeError("b\x1b")])
    except ExceptionGroup:
        record = _record("failed", exc_info=True)
    text = TextFormatter().format(record)
    assert "\x1b" not in text and r"| TypeError: b\x1b" in text
    assert not [line for line in text.splitlines() if "FORGED" in line and "ValueError: a evil" not in line]


@pytest.mark.parametrize("fmt", [TextFormatter(), JsonFormatter("worker")])
def test_values_and_messages_are_clipped_and_masked(fmt: logging.Formatter) -> None:
    huge = "call-15550100-" + "x" * 1_000_000
    line = fmt.format(_record("%s room=%s: %s", "room_started", huge, "applied"))
    assert len(line) < 1200 and "…(999014 more chars): applied" in line  # the rest of the line kept
    assert "call-•••0100-" in line and "15550100" not in line
    whole = fmt.format(_record("x" * 100_000))  # a message with no values, say from a library
    assert len(whole) < 4200 and "…(96000 more chars)" in whole


def test_a_number_split_between_the_format_and_its_value_is_masked() -> None:
    assert "•••0100" in TextFormatter().format(_record("call-%s", "15550100"))


def test_an_exception_python_cannot_raise_is_a_json_line_too(caplog: pytest.LogCaptureFixture) -> None:
    """A finaliser's exception (at shutdown, say) reaches the log as a record, so a JSON log drain gets a
    JSON line, not Python's bare "Exception ignored in" text on stderr."""
    from types import SimpleNamespace

    from workers.logs import log_unraisable

    try:
        raise RuntimeError("socket closed")
    except RuntimeError as exc:
        hook = SimpleNamespace(
            exc_type=RuntimeError,
            exc_value=exc,
            exc_traceback=exc.__traceback__,
            err_msg=None,
            object="a finaliser",
        )
    with caplog.at_level(logging.ERROR, logger="warden.errors"):
        log_unraisable(hook)
    (record,) = caplog.records
    line = json.loads(JsonFormatter("worker").format(record))
    assert line["level"] == "ERROR" and line["message"] == "Exception ignored in: 'a finaliser'"
    assert "socket closed" in line["exception"]


def test_the_processs_uncaught_exception_is_a_json_line_too(caplog: pytest.LogCaptureFixture) -> None:
    """ARQ's shutdown cancelling a job in flight raises CancelledError out of the worker's run loop: its
    traceback reaches the log as one record, not as bare lines on stderr."""
    import asyncio

    from workers.logs import log_uncaught

    try:
        raise asyncio.CancelledError()
    except asyncio.CancelledError as exc:
        with caplog.at_level(logging.ERROR, logger="warden.errors"):
            log_uncaught(type(exc), exc, exc.__traceback__)
    (record,) = caplog.records
    line = json.loads(JsonFormatter("worker").format(record))
    assert (
        line["message"] == "stopped by an uncaught CancelledError" and "CancelledError" in line["exception"]
    )

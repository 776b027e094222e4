"""Log lines as JSON, and the dev key's PyJWT warning filtered for livekit-server --dev's pair only."""

from __future__ import annotations

import json
import logging
import sys
import warnings

import jwt

from workers.logs import JsonFormatter, allow_dev_keys


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

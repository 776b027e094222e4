"""The bounds on what Warden keeps from a webhook (`workers.core.bounds`) agree with the columns that hold
it, so SQLite and PostgreSQL store the same; event ids and job ids are never input as it is."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.support.events import LIVEKITS_ID
from workers.core import bounds
from workers.queue.jobs import (
    APPLY_WEBHOOK,
    HEARTBEAT,
    OPERATOR_ACTION,
    function_of,
    heartbeat_job_id,
    incident_report_job_id,
    operator_job_id,
    retry_job_id,
    webhook_job_id,
)
from workers.store.models import (
    DEAD_LETTERS,
    EVENTS,
    INCIDENT_ROOMS,
    INCIDENTS,
    OUTBOX,
    ROOM_AGENTS,
    ROOMS,
)
from workers.store.unstorable import width

LONGEST_ID = "EV_" + "x" * 60  # the longest event id kept as it is; a hash is shorter
LONGEST_SID = "RM_" + "x" * (bounds.SID - 3)


@pytest.mark.parametrize(
    ("bound", "columns"),
    [
        (bounds.ROOM_NAME, [ROOMS.c.name, INCIDENT_ROOMS.c.room_name, DEAD_LETTERS.c.room_name]),
        (bounds.IDENTITY, [EVENTS.c.participant_identity]),
        (
            bounds.SID,
            [
                ROOMS.c.sid,
                EVENTS.c.room_sid,
                INCIDENT_ROOMS.c.room_sid,
                OUTBOX.c.room_sid,
                ROOM_AGENTS.c.room_sid,
            ],
        ),
        (bounds.EVENT_NAME, [EVENTS.c.name]),
        (bounds.AGENT_NAME, [INCIDENTS.c.agent_name, ROOM_AGENTS.c.agent]),
    ],
)
def test_each_bound_is_the_width_of_the_columns_that_hold_it(bound: int, columns: list[object]) -> None:
    assert {width(column) for column in columns} == {bound}


def test_the_longest_ids_made_of_kept_values_fit_their_columns() -> None:
    notice = f"{LONGEST_ID}#99"  # an action's row in the event log, and its outbox notice
    deadline_passed = f"deadline_passed:{LONGEST_SID}:{2**31}"
    assert len(notice) <= width(EVENTS.c.event_id) and len(deadline_passed) <= width(EVENTS.c.event_id)
    for job_id in (webhook_job_id(LONGEST_ID), incident_report_job_id(f"{deadline_passed}#99")):
        assert len(job_id) <= width(DEAD_LETTERS.c.id) and len(job_id) <= width(OUTBOX.c.id)
    assert len(heartbeat_job_id("r" * bounds.ROOM_NAME, "i" * bounds.IDENTITY, 1e10)) < 64


@given(st.text())
def test_an_event_id_is_livekits_as_it_is_or_a_hash_of_it(raw: str) -> None:
    kept = bounds.event_id(raw, "sha256-fallback")
    if not raw:
        assert kept == "sha256-fallback"
    elif LIVEKITS_ID.fullmatch(raw):
        assert kept == raw
    else:
        assert kept.startswith(bounds.HASHED) and len(kept) == len(bounds.HASHED) + 32
        assert not LIVEKITS_ID.fullmatch(kept) and kept == bounds.event_id(raw, "")  # one id per event
    assert function_of(webhook_job_id(kept)) == APPLY_WEBHOOK


def test_ids_shaped_like_other_kinds_are_hashed() -> None:
    shapes = (
        "deadline:RM_x:1",
        "incident:EV_1#0",
        "escalate:EV_1#0",
        "retry:EV_1:1",
        "EV_1#0",
        "EV_" + "a" * 61,
    )
    for shaped in shapes:
        assert bounds.event_id(shaped, "").startswith(bounds.HASHED), shaped


def test_a_heartbeats_job_id_holds_neither_the_room_nor_the_identity() -> None:
    job_id = heartbeat_job_id("call:1", "agent", 1700000000.5)
    assert job_id != heartbeat_job_id("call", "1:agent", 1700000000.5)  # `:` in names cannot meet
    assert "call" not in job_id and function_of(job_id) == HEARTBEAT
    assert function_of(retry_job_id(job_id, 3)) == HEARTBEAT


@given(st.text(), st.integers(40, 2000))
def test_clipped_text_fits_and_says_how_much_was_left_out(text: str, limit: int) -> None:
    clipped = bounds.clip(text, limit)
    assert len(clipped) <= limit and "\x00" not in clipped
    if len(text) <= limit:
        assert clipped == text.replace("\x00", "\ufffd")
    else:
        kept = clipped.rsplit("…(", 1)[0]
        assert clipped.endswith(f"…({len(text) - len(kept)} more chars)")
        assert text.replace("\x00", "\ufffd").startswith(kept)


def test_a_problem_names_the_length_or_the_nul_never_the_value() -> None:
    assert bounds.problem("x" * 257, 256) == "257 characters, over 256"
    assert bounds.problem("a\x00b", 256) == "holding a NUL character"
    assert bounds.problem("x" * 256, 256) is None


def test_an_operators_request_has_a_job_id_of_its_kind_bounded_whatever_the_room_is_called() -> None:
    """Issue 28: one job per request while queued; a room's long name (and a colon) hashed."""
    for job_id in (
        operator_job_id("ack", "IN_0123456789ab"),
        operator_job_id("redispatch", "call:" + "9" * 250, "notetaker" * 14),
    ):
        assert function_of(job_id) == OPERATOR_ACTION and len(job_id) <= 160, job_id
    assert operator_job_id("redispatch", "a", "b") != operator_job_id("redispatch", "a", "c")

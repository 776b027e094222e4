"""Bad values are that event's problem (issue 24): an event whose values the database cannot store (a
300-character identity, a NUL, a constraint it breaks) fails alone, at once, as a dead letter naming
the reason, while the events grouped with it in one transaction are recorded; an unavailable database
still makes every job retry. On SQLite (which would store the long value) and PostgreSQL (which
refuses it) alike.

The poisoned events come as a job queued by an older version would carry them: the web refuses such
values now (`workers.core.bounds`), so they reach the worker only from before, or from Warden itself."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import Any

import pytest
from arq.worker import Retry
from sqlalchemy.exc import OperationalError

from tests.support.events import parse
from tests.support.harness import Harness, harness
from tests.support.helpers import body, person
from workers.core.events import Event, to_dict
from workers.jobs.delivery.dead_letters import DEAD
from workers.jobs.runtime.context import context
from workers.jobs.runtime.worker import worker_settings
from workers.queue.jobs import APPLY_WEBHOOK
from workers.store import group, unstorable, writer
from workers.store.dead_letters import newest
from workers.store.writer import load_room

LONG = "p" * 300  # over the 256 characters of `events.participant_identity`


@pytest.fixture
async def h(redis_url: str, database_url: str) -> AsyncIterator[Harness]:
    async with harness(redis_url, database_url) as ready:
        yield ready


def _joined(n: int, identity: str) -> Event:
    raw = body(
        "participant_joined",
        id=f"EV_join{n}",
        created_at=int(time.time()),
        room=f"room-{n}",
        sid=f"RM_{n}",
        participant=person("alice"),
    )
    event = parse(raw)
    assert event.participant is not None
    return replace(event, participant=replace(event.participant, identity=identity))


async def _run_together(h: Harness, events: list[Event]) -> list[Any]:
    """The worker's registered webhook job (dead letters and all) for each event, run concurrently as a
    worker runs them, so that their batches share the group commit; what each returned or raised."""
    (apply,) = [f for f in worker_settings(context(h.ctx).settings)["functions"] if f.name == APPLY_WEBHOOK]
    run: Callable[..., Awaitable[str]] = apply.coroutine
    jobs = [
        run({**h.ctx, "job_id": f"webhook:{e.id}", "job_try": 1}, to_dict(e), time.time()) for e in events
    ]
    return list(await asyncio.gather(*jobs, return_exceptions=True))


async def _people(h: Harness, sid: str) -> list[str] | None:
    room = await load_room(h.engine, sid)
    return None if room is None else sorted(p.identity for p in room.people)


POISONS = {"an identity too long": LONG, "a NUL": "ali\x00ce"}


@pytest.mark.parametrize("poison", list(POISONS))
async def test_one_poisoned_event_is_a_dead_letter_at_once_and_its_group_is_recorded(
    h: Harness, poison: str
) -> None:
    events = [_joined(n, POISONS[poison] if n == 2 else "alice") for n in range(4)]
    outcomes = await _run_together(h, events)
    assert outcomes == ["applied", "applied", DEAD, "applied"], outcomes  # no Retry: tried once
    for n in (0, 1, 3):
        assert await _people(h, f"RM_{n}") == ["alice"]
    assert await _people(h, "RM_2") is None  # nothing of the poisoned event is stored
    (letter,) = await newest(h.engine)
    assert (letter.id, letter.function, letter.room_sid, letter.attempts) == (
        "webhook:EV_join2",
        APPLY_WEBHOOK,
        "RM_2",
        1,
    )
    reason = {"an identity too long": "300 characters, over 256", "a NUL": "holding a NUL character"}[poison]
    assert letter.error == (
        "UnstorableEvent: event EV_join2 (participant_joined) not stored: its "
        f"events.participant_identity is {reason}"
    )


@pytest.fixture
def database_decides(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """No check before writing: the database itself refuses (or takes) the values. The sizes of the
    groups written, in order."""
    monkeypatch.setattr(unstorable, "check", lambda batch: None)
    sizes, real = [], group.record_in

    async def record_in(connection: Any, batches: Any, rules: Any) -> Any:
        sizes.append(len(batches))
        return await real(connection, batches, rules)

    monkeypatch.setattr(group, "record_in", record_in)
    return sizes


# SQLite stores a value of any length: only PostgreSQL refuses this one.
@pytest.mark.parametrize(
    "database_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
async def test_a_value_postgresql_refuses_fails_its_event_alone(
    h: Harness, database_decides: list[int]
) -> None:
    outcomes = await _run_together(h, [_joined(n, LONG if n == 2 else "alice") for n in range(4)])
    assert outcomes == ["applied", "applied", DEAD, "applied"], outcomes
    assert database_decides == [4, 2, 2, 1, 1]  # the group, then halves until the bad one is alone
    (letter,) = await newest(h.engine)
    assert letter.attempts == 1 and letter.error == (
        "UnstorableEvent: event EV_join2 (participant_joined) not stored: the database refused it "
        "(value too long for type character varying(256))"
    )
    assert [await _people(h, f"RM_{n}") for n in range(4)] == [["alice"], ["alice"], None, ["alice"]]


async def test_a_constraint_an_event_breaks_fails_it_alone(
    h: Harness, database_decides: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    real = writer.event_row

    def event_row(event: Event, received_at: float) -> dict[str, Any]:
        row = real(event, received_at)
        return {**row, "kind": None} if event.id == "EV_join1" else row  # NOT NULL, on both databases

    monkeypatch.setattr(writer, "event_row", event_row)
    outcomes = await _run_together(h, [_joined(n, "alice") for n in range(4)])
    assert outcomes == ["applied", DEAD, "applied", "applied"], outcomes
    assert database_decides == [4, 2, 1, 1, 2]
    (letter,) = await newest(h.engine)
    assert letter.attempts == 1 and "not stored: the database refused it" in letter.error
    assert "events.kind" in letter.error or '"kind"' in letter.error


async def test_an_unavailable_database_still_retries_every_job(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def refused(*args: Any) -> Any:
        raise OperationalError("INSERT ...", {}, ConnectionRefusedError("connection refused"))

    monkeypatch.setattr(group, "record_in", refused)
    outcomes = await _run_together(h, [_joined(n, "alice") for n in range(4)])
    assert all(isinstance(o, Retry) for o in outcomes), outcomes
    assert await newest(h.engine) == []

"""Dead letters: a planted bug in the fold makes one room's webhook job fail; the real claiming worker
retries it, then keeps it as a dead letter that the API, the CLI, `/metrics` and the dashboard show,
while other rooms go on; once the bug is gone, `warden retry ID` applies the event."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx
import pytest
from arq.worker import Retry
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.exc import DBAPIError

from devtools.simulator.serving import serve
from service.app import create_app
from tests.support.cli import run_cli
from tests.support.events import parse
from tests.support.harness import Harness, harness
from tests.support.helpers import body, person
from tests.support.pg_standin import SHUTTING_DOWN, STARTING_UP, cannot_connect_now, resetting, stopped
from tests.support.settings import make_settings
from tests.support.waiting import wait_until
from workers.core import machine
from workers.core.events import Event, to_dict
from workers.jobs.delivery.dead_letters import DEAD, UNEXPECTED_TRIES, dead_lettered
from workers.jobs.runtime.context import context
from workers.jobs.runtime.retry import retry_later
from workers.jobs.runtime.worker import worker_settings
from workers.queue.claiming import ClaimingWorker
from workers.queue.enqueue import Enqueuer
from workers.queue.jobs import (
    OPERATOR_ACTION,
    REDISPATCH,
    function_of,
    original_job_id,
    queue_operator_action,
    queue_webhook,
    retry_job_id,
)
from workers.store.dead_letters import DeadLetter, keep, newest
from workers.store.engine import make_engine
from workers.store.writer import load_room

SECRET_URL = "https://hooks.example.com/services/T0/B0/s3cret-hook-token"


@pytest.fixture
def planted_bug(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """The fold raises for the event EV_bad (naming a secret URL, as an httpx error would)."""
    real = machine.transition  # the room machine, which the writer and the re-fold both call

    def transition(room: Any, event: Event, **kwargs: Any) -> Any:
        if event.id == "EV_bad":
            raise RuntimeError(f"planted bug while calling {SECRET_URL}")
        return real(room, event, **kwargs)

    monkeypatch.setattr(machine, "transition", transition)  # a room's next event, or its log re-folded
    yield monkeypatch


async def _queue(
    h: Harness, event_id: str, room: str, sid: str, event: str = "room_started", **fields: Any
) -> None:
    raw = body(event, id=event_id, created_at=int(time.time()), room=room, sid=sid, **fields)
    settings = context(h.ctx).settings
    queued = await queue_webhook(
        Enqueuer(h.queue, settings.warden_queue_name), event_id, to_dict(parse(raw)), time.time()
    )
    assert queued


@contextlib.asynccontextmanager
async def working(h: Harness, functions: list[Any] | None = None) -> AsyncIterator[None]:
    """The worker's registered jobs (dead letters, metrics and all; or only `functions` of them) run by a
    real claiming worker."""
    settings = context(h.ctx).settings
    registered = worker_settings(settings)
    worker = ClaimingWorker(
        functions=registered["functions"] if functions is None else functions,
        unknown_function=registered["unknown_function"],
        queue_name=settings.warden_queue_name,
        redis_pool=h.queue,
        handle_signals=False,
        poll_delay=0.01,
        ctx=h.ctx,
    )
    running = asyncio.create_task(worker.async_run())
    try:
        yield
    finally:
        for task in [running, *worker.tasks.values()]:
            task.cancel()
        await asyncio.gather(running, *worker.tasks.values(), return_exceptions=True)


async def _any(found: Awaitable[list[Any]]) -> bool:
    return bool(await found)


async def _kept(h: Harness, *, retried: bool) -> bool:
    """A dead letter is kept, re-run (`retried`) or not."""
    return any((letter.retried_at is not None) == retried for letter in await newest(h.engine))


def _gauge(text: str, name: str) -> float:
    (family,) = [f for f in text_string_to_metric_families(text) if f.name == name]
    (sample,) = family.samples
    return float(sample.value)


async def test_a_planted_bug_is_kept_as_a_dead_letter_and_re_run_once_fixed(
    redis_url: str,
    database_url: str,
    planted_bug: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with harness(redis_url, database_url) as h:
        settings = context(h.ctx).settings
        async with serve(create_app(settings)) as url, httpx.AsyncClient(base_url=url) as api, working(h):

            async def letters() -> list[dict[str, Any]]:
                return list((await api.get("/api/dead-letters")).json()["dead_letters"])

            async def heard(room: str) -> set[str]:
                found = await api.get(f"/api/rooms/{room}")
                timeline = found.json()["timeline"] if found.status_code == 200 else []
                return {e["type"] for e in timeline if e["source"] == "livekit"}

            started = time.monotonic()
            await _queue(h, "EV_bad", "bad-room", "RM_bad")
            await _queue(
                h, "EV_bad_bob", "bad-room", "RM_bad", "participant_joined", participant=person("bob")
            )
            await _queue(h, "EV_good", "good-room", "RM_good")
            await _queue(
                h, "EV_alice", "good-room", "RM_good", "participant_joined", participant=person("alice")
            )
            await wait_until(lambda: _any(letters()), "EV_bad kept as a dead letter")
            assert time.monotonic() - started >= 3.0, "tried three times, 1 s then 2 s apart"
            assert await heard("good-room") == {"room_started", "participant_joined"}, "other rooms go on"
            assert await heard("bad-room") == {"participant_joined"}, "its later event is applied, not EV_bad"
            (letter,) = await letters()
            assert {k: letter[k] for k in ("id", "function", "room", "attempts", "retried_at")} == {
                "id": "webhook:EV_bad",
                "function": "apply_webhook",
                "room": {"sid": "RM_bad", "name": "bad-room"},
                "attempts": 3,
                "retried_at": None,
            }
            assert letter["error"] == "RuntimeError: planted bug while calling <url>"
            assert letter["args"][0]["id"] == "EV_bad", "the reduced event is kept"
            assert _gauge((await api.get("/metrics")).text, "warden_dead_letters") == 1
            assert "1 dead letter:" in re.sub(r"<[^>]+>", "", (await api.get("/")).text)
            page = (await api.get("/dead-letters")).text
            assert "EV_bad" in page and "planted bug" in page and "s3cret" not in page
            code, listed = await run_cli(capsys, "--url", url, "dead-letters")
            assert code == 0 and "EV_bad" in listed and "planted bug" in listed and "bad-room" in listed

            planted_bug.undo()  # the cause is fixed
            code, said = await run_cli(capsys, "--url", url, "retry", "webhook:EV_bad")
            assert code == 0 and "retry:webhook:EV_bad:1" in said, said

            async def applied() -> bool:
                return "room_started" in await heard("bad-room")

            await wait_until(applied, "the re-run applies EV_bad to its room")
            assert _gauge((await api.get("/metrics")).text, "warden_dead_letters") == 0
            (letter,) = await letters()
            assert letter["retried_at"] is not None
            code, refused = await run_cli(capsys, "--url", url, "retry", "webhook:EV_bad")
            assert code == 1 and "already re-run" in refused
            assert (await api.post("/api/dead-letters/EV_nope/retry")).status_code == 404
    assert "s3cret-hook-token" not in caplog.text
    assert "kept as a dead letter after 3 tries" in caplog.text


async def test_a_re_run_that_fails_again_is_the_same_dead_letter_again(
    redis_url: str, database_url: str, planted_bug: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async with harness(redis_url, database_url) as h:
        async with serve(create_app(context(h.ctx).settings)) as url, working(h):
            await _queue(h, "EV_bad", "bad-room", "RM_bad")
            await wait_until(lambda: _kept(h, retried=False), "EV_bad kept as a dead letter")
            code, _ = await run_cli(capsys, "--url", url, "retry", "webhook:EV_bad")
            assert code == 0
            await wait_until(
                lambda: _kept(h, retried=False), "the re-run fails again"
            )  # the bug is still there
        (letter,) = await newest(h.engine)
        assert (letter.id, letter.attempts, letter.retried_at) == ("webhook:EV_bad", 6, None)


async def test_a_dead_letter_kept_before_job_ids_had_kinds_is_re_run_under_its_bare_id(
    redis_url: str, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = body("room_started", id="EV_old", created_at=int(time.time()), room="old-room", sid="RM_old")
    event = to_dict(parse(raw))
    async with harness(redis_url, database_url) as h:
        # As the previous version kept it: the webhook's job id was its bare event id.
        old = DeadLetter(
            "EV_old", "apply_webhook", [event, 1.0], "RM_old", "old-room", "RuntimeError", 3, 1.0
        )
        await keep(h.engine, old)
        async with serve(create_app(context(h.ctx).settings)) as url, working(h):
            code, said = await run_cli(capsys, "--url", url, "retry", "EV_old")
            assert code == 0 and "retry:EV_old:1" in said, said
            await wait_until(lambda: _any(_room(h, "RM_old")), "the re-run applies EV_old")
        (letter,) = await newest(h.engine)
        assert (letter.id, letter.retried_at is not None) == ("EV_old", True)


async def _room(h: Harness, sid: str) -> list[object]:
    room = await load_room(h.engine, sid)
    return [] if room is None else [room]


async def test_a_job_whose_retries_run_out_is_kept_rather_than_failed(
    redis_url: str, database_url: str
) -> None:
    async def unavailable(ctx: dict[str, Any], room_sid: str, attempt: int) -> str:
        try:
            raise ConnectionRefusedError("database at postgresql://warden:pw@db/warden refused")
        except OSError as exc:
            raise retry_later(ctx, "database unavailable (%s); retried in %.0fs", "x") from exc

    job = dead_lettered("on_deadline", unavailable, max_tries=5)
    async with harness(redis_url, database_url) as h:
        h.ctx.update(job_id="deadline:RM_9:1", job_try=4)
        with pytest.raises(Exception, match="Retry"):
            await job(h.ctx, "RM_9", 1)
        h.ctx["job_try"] = 5
        assert await job(h.ctx, "RM_9", 1) == DEAD
        (letter,) = await newest(h.engine)
    assert (letter.function, letter.room_sid, letter.args, letter.attempts) == (
        "on_deadline",
        "RM_9",
        ["RM_9", 1],
        5,
    )
    assert letter.error == "retried 5 times: ConnectionRefusedError: database at <url> refused"


async def test_a_job_that_lost_its_database_connection_is_retried_not_kept(
    redis_url: str, database_url: str
) -> None:
    """PostgreSQL restarted under a job's statement: no fault of the job, which is retried as in an
    outage, past the few tries an unexpected error gets (UNEXPECTED_TRIES), and applied once it runs."""
    tries: list[int] = []

    async def cut_off(ctx: dict[str, Any], room_sid: str, attempt: int) -> str:
        tries.append(ctx["job_try"])
        if ctx["job_try"] < UNEXPECTED_TRIES + 2:
            lost = ConnectionResetError("connection was closed in the middle of operation")
            raise DBAPIError("SELECT 1", None, lost, connection_invalidated=True)
        return "applied"

    job = dead_lettered("on_deadline", cut_off, max_tries=25)
    async with harness(redis_url, database_url) as h:
        for job_try in range(1, UNEXPECTED_TRIES + 2):
            h.ctx.update(job_id="deadline:RM_9:1", job_try=job_try)
            with pytest.raises(Retry):
                await job(h.ctx, "RM_9", 1)
        h.ctx["job_try"] = UNEXPECTED_TRIES + 2
        assert await job(h.ctx, "RM_9", 1) == "applied"
        assert await newest(h.engine) == []
    assert tries == list(range(1, UNEXPECTED_TRIES + 3))


async def test_a_job_the_worker_does_not_know_is_kept_as_a_dead_letter_and_re_run_once_it_does(
    redis_url: str, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A web process upgraded before the worker queues a job the worker's release does not have (an
    operator's request, queued to a worker from before issue 28): ARQ alone drops it ("function not
    found") though the web answered 202. It is kept as a dead letter, and re-run once the worker has it."""
    async with harness(redis_url, database_url) as h:
        settings = context(h.ctx).settings
        queue = Enqueuer(h.queue, settings.warden_queue_name)
        assert await queue_operator_action(queue, REDISPATCH, "gone-room", "alice", 1.0, "agent-1")
        older = [f for f in worker_settings(settings)["functions"] if f.name != OPERATOR_ACTION]
        async with working(h, older):
            await wait_until(lambda: _kept(h, retried=False), "the unknown job kept as a dead letter")
        (letter,) = await newest(h.engine)
        assert (letter.function, letter.args, letter.attempts) == (
            OPERATOR_ACTION,
            [REDISPATCH, "gone-room", "alice", 1.0, "agent-1"],
            3,
        )
        assert "no job 'operator_action'" in letter.error and "upgrade the worker" in letter.error
        async with serve(create_app(settings)) as url, working(h):  # the worker upgraded
            code, said = await run_cli(capsys, "--url", url, "retry", letter.id)
            assert code == 0, said
            await wait_until(lambda: _kept(h, retried=True), "the re-run applied")
            # applied ("no room": the room is gone), not failed again into the same dead letter
            await wait_until(lambda: _queue_empty(h), "nothing left in the queue")
        (letter,) = await newest(h.engine)
        assert letter.retried_at is not None


async def _queue_empty(h: Harness) -> bool:
    return not await h.queue.zcard(context(h.ctx).settings.warden_queue_name)


@pytest.mark.parametrize(
    ("server", "said"),
    [
        (lambda: cannot_connect_now(STARTING_UP), STARTING_UP),
        (lambda: cannot_connect_now(SHUTTING_DOWN), SHUTTING_DOWN),
        (stopped, "Connect call failed"),
        (resetting, "Connection reset by peer"),
    ],
    ids=["starting_up", "shutting_down", "stopped", "resetting"],
)
async def test_a_job_that_cannot_reach_postgresql_is_retried_not_kept(
    server: Callable[[], AbstractAsyncContextManager[int]], said: str, redis_url: str, database_url: str
) -> None:
    """PostgreSQL refuses new sessions while it starts up or shuts down (SQLSTATE 57P03, asyncpg's
    `CannotConnectNowError`), refuses connections once stopped, or drops them as it goes down: no fault
    of the job, which is retried as in an outage, past UNEXPECTED_TRIES, and never kept though the
    database was back in time to keep it."""

    async def read(ctx: dict[str, Any], room_sid: str, attempt: int) -> str:
        engine = restarting if ctx["job_try"] < UNEXPECTED_TRIES + 2 else h.engine
        return "read" if await load_room(engine, room_sid) is None else "found"

    job = dead_lettered("on_deadline", read, max_tries=25)
    async with server() as port, harness(redis_url, database_url) as h:
        restarting = make_engine(f"postgresql+asyncpg://postgres@127.0.0.1:{port}/warden")
        try:
            for job_try in range(1, UNEXPECTED_TRIES + 2):
                h.ctx.update(job_id="deadline:RM_9:1", job_try=job_try)
                with pytest.raises(Retry) as retried:
                    await job(h.ctx, "RM_9", 1)
                assert said in str(retried.value.__cause__)
        finally:
            await restarting.dispose()
        h.ctx["job_try"] = UNEXPECTED_TRIES + 2
        assert await job(h.ctx, "RM_9", 1) == "read"
        assert await newest(h.engine) == []


def test_re_run_ids_name_the_job_they_re_run() -> None:
    assert retry_job_id("escalate:EV_1#0", 2) == "retry:escalate:EV_1#0:2"
    assert original_job_id("retry:escalate:EV_1#0:2") == "escalate:EV_1#0"
    assert original_job_id("retry:webhook:EV_abc:1") == "webhook:EV_abc"
    assert original_job_id("webhook:EV_abc") == "webhook:EV_abc"
    assert function_of("retry:escalate:EV_1#0:2") == "escalate", "a re-run is claimed for its own timeout"
    assert function_of("retry:webhook:EV_abc:1") == function_of("webhook:EV_abc") == "apply_webhook"
    # A webhook queued, or kept as a dead letter, before job ids had kinds: its id is the bare event id.
    assert original_job_id("retry:EV_abc:1") == "EV_abc"
    assert function_of("retry:EV_abc:1") == function_of("EV_abc") == ""


async def test_dead_letters_are_for_the_admin_only(redis_url: str, database_url: str) -> None:
    settings = make_settings(
        redis_url=redis_url, database_url=database_url, warden_admin_token="s3cret-admin"
    )
    async with serve(create_app(settings)) as url, httpx.AsyncClient(base_url=url) as api:
        assert (await api.get("/api/dead-letters")).status_code == 401
        assert (await api.post("/api/dead-letters/EV_1/retry")).status_code == 401
        assert (await api.get("/dead-letters")).status_code == 401
        allowed = await api.get("/api/dead-letters", headers={"Authorization": "Bearer s3cret-admin"})
        assert (allowed.status_code, allowed.json()) == (200, {"dead_letters": []})


async def test_a_callers_number_in_a_dead_letter_is_never_shown(redis_url: str, database_url: str) -> None:
    """A SIP room is often named after the caller: the letter keeps it whole to re-run it, the API and the
    dashboard mask it."""
    number = "+15550100123"
    raw = body("room_started", id="EV_sip", created_at=int(time.time()), room=f"call-{number}", sid="RM_sip")
    event = to_dict(parse(raw))
    async with harness(redis_url, database_url) as h:
        await keep(
            h.engine,
            DeadLetter(
                "webhook:EV_sip",
                "apply_webhook",
                [event, 1.0],
                "RM_sip",
                f"call-{number}",
                f"RuntimeError: no room call-{number}",
                1,
                1.0,
            ),
        )
        (kept,) = await newest(h.engine)
        assert number in str(kept.args)  # kept whole, to be re-run as it was
        async with serve(create_app(context(h.ctx).settings)) as url, httpx.AsyncClient(base_url=url) as web:
            api, page = await web.get("/api/dead-letters"), await web.get("/dead-letters")
        (shown,) = api.json()["dead_letters"]
        assert shown["args"][0]["room_name"] == "call-•••0123", shown["args"]
        assert number not in api.text and "5550100123" not in api.text
        assert page.status_code == 200 and "5550100123" not in page.text

"""Fuzzing POST /webhook over HTTP: 10,000 malformed, truncated, mis-signed and oversized requests get
only 4xx — never a 5xx — and none of them reaches the queue. Signed webhooks whose room names and
identities hold control characters are taken in, and what Warden then shows of them (the dashboard,
`warden room`, a text log line) is inert and bounded; those over their bound (`workers.core.bounds`) are
refused whole. Signed webhooks with any event id, shaped like another job's id or not, are queued
under a webhook job id (`webhook:` and LiveKit's id, or its hash), never under the id as sent."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import redis
import uvicorn
from arq.jobs import deserialize_job_raw
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devtools.embedded_redis import free_port
from service import cli
from service.app import create_app
from tests.support.events import LIVEKITS_ID, parse
from tests.support.helpers import FIXTURES, agent, body, person, sign
from tests.support.settings import KEY, SECRET, make_settings
from workers.core import bounds
from workers.core.room import Policy
from workers.core.shown import TEXT_CHARS
from workers.logs import TextFormatter
from workers.migrate import upgrade
from workers.queue.jobs import APPLY_WEBHOOK, function_of
from workers.store.engine import make_engine
from workers.store.writer import record_event

EXAMPLES = 2500  # per test; the four request tests below make 10,000 requests
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
SAMPLES = [p.read_bytes() for p in sorted(FIXTURES.glob("*.json"))]


@pytest.fixture(scope="module")
def web_database(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The web app's database (SQLite), which a test may write rooms into as the worker would."""
    return f"sqlite:///{tmp_path_factory.mktemp('fuzz')}/w.db"


@pytest.fixture(scope="module")
def web(web_database: str, redis_server: str) -> Iterator[tuple[httpx.Client, str]]:
    """Warden's web app under uvicorn in a thread, for synchronous Hypothesis tests."""
    redis.Redis.from_url(redis_server).flushdb()
    app_settings = make_settings(
        redis_url=redis_server, database_url=web_database, warden_max_body_bytes=64 * 1024
    )
    asyncio.run(_migrate(app_settings.database_url))
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(app_settings), host="127.0.0.1", port=port, log_level="error")
    )
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
        while not server.started:  # uvicorn sets it once listening; nothing to await across threads
            threading.Event().wait(0.01)
        yield client, redis_server
    server.should_exit = True
    thread.join(timeout=10)


async def _migrate(url: str) -> None:
    engine = make_engine(url)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()


def queued(redis_url: str) -> int:
    return int(redis.Redis.from_url(redis_url).zcard("warden:queue"))


def post(client: httpx.Client, body: bytes, authorization: str | bytes | None) -> int:
    headers: dict[str, str | bytes] = {"Content-Type": "application/webhook+json"}
    if authorization is not None:
        headers["Authorization"] = authorization
    return client.post("/webhook", content=body, headers=headers).status_code


header_bytes = st.binary(max_size=300).map(
    lambda b: bytes(c for c in b if c >= 0x20 and c != 0x7F).strip(b" \t")
)
tokens = st.one_of(
    st.none(),
    header_bytes,  # any header value HTTP can carry, latin-1 included
    st.builds(lambda b: sign(b, "stranger", SECRET), st.binary(max_size=50)),  # unknown key
    st.builds(lambda b: sign(b, KEY, "x" * 40), st.binary(max_size=50)),  # wrong secret
    st.sampled_from(SAMPLES).map(lambda raw: sign(raw, KEY, SECRET)),  # signed for another body
)


@FUZZ
@given(body=st.one_of(st.binary(max_size=2000), st.sampled_from(SAMPLES)), token=tokens)
def test_unverifiable_requests_are_401(
    web: tuple[httpx.Client, str], body: bytes, token: str | bytes | None
) -> None:
    client, redis_url = web
    if token is not None and body in SAMPLES and token == sign(body, KEY, SECRET):
        return  # a correct signature is not what this test is about
    assert post(client, body, token) == 401
    assert queued(redis_url) == 0


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)


@FUZZ
@given(value=json_values)
def test_signed_json_that_is_no_webhook_event_is_400(web: tuple[httpx.Client, str], value: object) -> None:
    client, redis_url = web
    if isinstance(value, dict) and isinstance(value.get("event"), str) and value["event"]:
        return  # an object with an event name is a (minimal) WebhookEvent
    body = json.dumps(value).encode()
    assert post(client, body, sign(body, KEY, SECRET)) == 400
    assert queued(redis_url) == 0


@FUZZ
@given(sample=st.sampled_from(SAMPLES), data=st.data())
def test_signed_truncated_or_corrupted_bodies_are_400(
    web: tuple[httpx.Client, str], sample: bytes, data: st.DataObject
) -> None:
    client, redis_url = web
    cut = data.draw(st.integers(0, len(sample) - 1))
    junk = data.draw(st.binary(max_size=8))
    body = sample[:cut] + junk
    try:
        parsed = json.loads(body)
        if isinstance(parsed, dict) and isinstance(parsed.get("event"), str) and parsed["event"]:
            return  # the junk happened to complete a valid event
    except ValueError:
        pass
    assert post(client, body, sign(body, KEY, SECRET)) == 400
    assert queued(redis_url) == 0


@FUZZ
@given(size=st.integers(64 * 1024 + 1, 200 * 1024), signed=st.booleans())
def test_oversized_bodies_are_413(web: tuple[httpx.Client, str], size: int, signed: bool) -> None:
    client, redis_url = web
    body = b"{" + b" " * (size - 2) + b"}"
    assert post(client, body, sign(body, KEY, SECRET) if signed else None) == 413
    assert queued(redis_url) == 0


paths = st.text(
    st.characters(min_codepoint=33, max_codepoint=126, exclude_characters="/?#%"), min_size=1, max_size=40
)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    path=st.one_of(
        st.builds(lambda n: f"/api/rooms/{n}", paths),
        st.builds(lambda n: f"/api/incidents/{n}", paths),
        st.just("/api/rooms"),
        st.just("/api/incidents"),
    ),
    params=st.dictionaries(st.sampled_from(["limit", "offset", "x"]), st.text(max_size=12), max_size=3),
)
def test_the_api_answers_odd_requests_with_2xx_or_4xx(
    web: tuple[httpx.Client, str], path: str, params: dict[str, str]
) -> None:
    client, _ = web
    status = client.get(path, params=params).status_code
    assert status < 500


# Text as a room name or an identity may hold it: any character, the controls likeliest; or one
# character repeated past what is shown (a 5,000-character name).
hostile_text = st.one_of(
    st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=60),
    st.text(st.sampled_from("\n\r\x1b\x07\x00\x7f\x9b\u2028\u202e [/]1-+call"), min_size=1, max_size=80),
    st.builds(
        lambda c, n: c * n, st.sampled_from(["x", "\n", "\x1b", "1-", "\u202e"]), st.integers(150, 5000)
    ),
)
RAW_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
POLICY = Policy("notetaker", join_sla=15.0)
_names = itertools.count()


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(room=hostile_text, identity=hostile_text)
def test_hostile_names_are_taken_in_and_shown_inert_and_bounded(
    web: tuple[httpx.Client, str],
    web_database: str,
    room: str,
    identity: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    client, redis_url = web
    sid = f"RM_fuzz{next(_names)}"
    raw = body(
        "participant_joined",
        id=f"EV_{sid}",
        created_at=int(time.time()),
        room=room,
        sid=sid,
        participant=person(identity or "-", f"PA_{sid}"),
    )
    status = post(client, raw, sign(raw, KEY, SECRET))
    redis.Redis.from_url(redis_url).flushdb()  # recorded below, as the worker would: nothing left queued
    refused = any(len(v) > 256 or "\x00" in v for v in (room, identity or "-"))  # the bounds, as README says
    assert status == (400 if refused else 200), status  # refused whole, or taken in (never a 5xx)
    if status == 400:
        return
    asyncio.run(_record(web_database, raw))
    page = client.get(f"/rooms/{sid}")
    assert page.status_code == 200 and len(page.text) < 60_000
    title = re.search(r"<title>(.*) · Warden</title>", page.text, re.S)
    heading = re.search(r"<h1>(.*?) <span", page.text, re.S)
    people = re.search(r"<dt>People</dt><dd>(.*?)</dd>", page.text, re.S)
    assert title and heading and people
    for shown in (title[1], heading[1], people[1]):
        assert not RAW_CONTROL.search(shown) and len(shown) < 1500, shown
    rooms = client.get("/", params={"fragment": "1"}).text
    row = re.search(rf'<tr data-room="([^"]*)" data-state="\w+">\s*<td><a href="/rooms/{sid}">', rooms)
    assert row and not RAW_CONTROL.search(row[1])
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        cli.main(["--url", str(client.base_url), "room", sid])
    printed = capsys.readouterr().out
    assert exited.value.code == 0, printed
    assert not RAW_CONTROL.search(printed.replace("\n", "")) and len(printed) < 60_000
    line = TextFormatter().format(
        logging.LogRecord("warden.worker", logging.INFO, "", 1, "%s %s", (room, identity), None)
    )
    assert not RAW_CONTROL.search(line) and len(line) < 6 * 2 * (TEXT_CHARS + 30)  # an escape: ≤ 6 chars


async def _record(url: str, raw: bytes) -> None:
    engine = make_engine(make_settings(database_url=url).database_url)
    try:
        await record_event(engine, parse(raw), received_at=time.time(), rules=POLICY)
    finally:
        await engine.dispose()


KINDS = ["deadline", "heartbeat", "escalate", "retry", "cron", "webhook", "deadline_passed", "arq:job"]
event_ids = st.one_of(
    st.text(max_size=80),  # anything at all, controls and `:` and `#` included
    st.builds(lambda kind, rest: f"{kind}:{rest}", st.sampled_from(KINDS), st.text(max_size=40)),
    st.from_regex(r"EV_[A-Za-z0-9_-]{1,70}(#[0-9])?", fullmatch=True),  # LiveKit's form, and past it
    st.builds(lambda n: "EV_" + "a" * n, st.integers(55, 5000)),
)
WEBHOOK_JOB = re.compile(r"webhook:(EV_[A-Za-z0-9_-]{1,60}|sha256-id-[0-9a-f]{32}|sha256-[0-9a-f]{32})")


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(event_id=event_ids)
def test_any_signed_event_id_is_queued_under_a_webhook_job_id(
    web: tuple[httpx.Client, str], event_id: str
) -> None:
    client, redis_url = web
    queue = redis.Redis.from_url(redis_url)
    queue.flushdb()
    raw = body("room_started", id=event_id, created_at=int(time.time()), room="ids", sid="RM_ids")
    assert post(client, raw, sign(raw, KEY, SECRET)) == 200
    (queued,) = [m.decode() for m in queue.zrange("warden:queue", 0, -1)]
    assert WEBHOOK_JOB.fullmatch(queued) and function_of(queued) == APPLY_WEBHOOK, queued
    if event_id and LIVEKITS_ID.fullmatch(event_id):
        assert queued == f"webhook:{event_id}"
    assert post(client, raw, sign(raw, KEY, SECRET)) == 200  # LiveKit's retry: the same job
    assert [m.decode() for m in queue.zrange("warden:queue", 0, -1)] == [queued]


# Each field Warden keeps exactly: its bound (`workers.core.bounds`), how a webhook carries it, and
# where the reduced event keeps it.
Carry = Callable[[str], dict[str, object]]
Read = Callable[[dict[str, Any]], object]
KEPT: dict[str, tuple[int, Carry, Read]] = {
    "room.name": (bounds.ROOM_NAME, lambda v: {"room": {"sid": "RM_v", "name": v}}, lambda e: e["room_name"]),
    "room.sid": (bounds.SID, lambda v: {"room": {"sid": v, "name": "v"}}, lambda e: e["room_sid"]),
    "participant.identity": (
        bounds.IDENTITY,
        lambda v: {"participant": person(v, "PA_v")},
        lambda e: e["participant"]["identity"],
    ),
    "participant.sid": (
        bounds.SID,
        lambda v: {"participant": person("alice", v)},
        lambda e: e["participant"]["sid"],
    ),
    "participant's agent name attribute": (
        bounds.AGENT_NAME,
        lambda v: {"participant": {**agent("a", v, "PA_v")}},
        lambda e: e["participant"]["agent_name"],
    ),
}


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(field=st.sampled_from(list(KEPT)), data=st.data())
def test_values_over_their_bound_are_refused_whole_and_those_within_kept_exactly(
    web: tuple[httpx.Client, str], field: str, data: st.DataObject
) -> None:
    client, redis_url = web
    queue = redis.Redis.from_url(redis_url)
    queue.flushdb()
    limit, carry, read = KEPT[field]
    # at most 5,000 characters: 30 KB as JSON escapes (\u001b), 60 KB for an agent's name, which a body
    # carries twice (`lk.agent_name` and `lk.agent.name`): within the fuzzed web's 64 KB body
    size = data.draw(st.one_of(st.integers(1, limit), st.integers(limit + 1, 5_000)), label="size")
    value = data.draw(st.sampled_from("x\n\x1bé\u202e"), label="char") * size
    raw = json.dumps(
        {
            "event": "participant_joined",
            "id": "EV_kept",
            "createdAt": "1",
            "room": {"sid": "RM_v", "name": "v"},
        }
        | carry(value)
    ).encode()
    response = client.post("/webhook", content=raw, headers={"Authorization": sign(raw, KEY, SECRET)})
    if size > limit:
        assert response.status_code == 400
        assert response.json()["error"].startswith(f"{field} is {size} characters, over {limit}")
        assert queue.zcard("warden:queue") == 0
    else:
        assert response.status_code == 200
        _, args, *_ = deserialize_job_raw(queue.get("arq:job:webhook:EV_kept"))
        assert read(args[0]) == value

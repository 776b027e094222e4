"""`warden check` against a stand-in LiveKit, the real Redis and a real database, and the simulator's
failure syntax: what an operator reads when something is wrong. `warden rooms` and `warden room` given
hostile names and identities (`tests.support.hostile`): nothing reaches the terminal but plain text, one
row per room, numbers masked, long values clipped."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from devtools import simulate
from devtools.simulator.livekit import FakeLiveKit
from devtools.simulator.serving import serve
from devtools.simulator.world import FailurePlan, Outage, parse_failures
from service.app import create_app
from service.cli import check
from tests.support.cli import run_cli
from tests.support.hostile import DIGITS, LONG, LONG_IDENTITY, RAW, record_rooms
from tests.support.settings import KEY, SECRET, make_settings


@pytest.fixture
def env(
    monkeypatch: pytest.MonkeyPatch, database_url: str, redis_url: str, engine: AsyncEngine
) -> pytest.MonkeyPatch:
    """A configured deployment (the `engine` fixture has migrated the database)."""
    for name, value in {
        "LIVEKIT_API_KEY": KEY,
        "LIVEKIT_API_SECRET": SECRET,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
    }.items():
        monkeypatch.setenv(name, value)
    return monkeypatch


async def test_check_reports_every_part_working(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = FakeLiveKit(KEY, SECRET)
    fake.join("call-1", "alice")
    async with serve(fake.app) as url:
        env.setenv("LIVEKIT_URL", url)
        assert await check.run() == 0
    out = capsys.readouterr().out
    assert f"✓ LiveKit: LiveKit at {url} answered list_rooms with key {KEY}: 1 room(s) live" in out
    assert "✓ Redis: Redis answers" in out and "✓ database" in out and "is current" in out
    assert "✓ retention: closed rooms and resolved incidents are deleted after 30d" in out
    assert out.rstrip().endswith("all good") and SECRET not in out


async def test_check_says_what_is_wrong_in_plain_words(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = FakeLiveKit(KEY, "another-secret-that-livekit-has-not-got-here")
    async with serve(fake.app) as url:
        env.setenv("LIVEKIT_URL", url)
        env.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
        assert await check.run() == 1
    out = capsys.readouterr().out
    assert "✗ LiveKit:" in out and "the API key or secret is wrong for this LiveKit" in out
    assert "✗ Redis: Redis unreachable" in out and "check REDIS_URL" in out
    assert "2 problem(s) found" in out and SECRET not in out


async def test_check_notices_a_database_without_schema(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: object
) -> None:
    env.setenv("DATABASE_URL", f"sqlite:///{tmp_path}/empty.db")
    env.setenv("LIVEKIT_URL", "http://127.0.0.1:1")
    assert await check.run() == 1
    out = capsys.readouterr().out
    assert "✗ database: the database has no schema: run `warden-migrate`" in out
    assert "✗ LiveKit:" in out and "is LIVEKIT_URL right, and is LiveKit up?" in out


async def test_check_names_a_bad_setting(env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    env.setenv("WARDEN_JOIN_SLA_SECONDS", "soon")
    assert await check.run() == 1
    assert "✗ settings: WARDEN_JOIN_SLA_SECONDS" in capsys.readouterr().out


def test_failure_syntax() -> None:
    plan = parse_failures("never-joins:0.1, leaves:0.05,stalls:0.05,outage:30+20")
    assert plan == FailurePlan(0.1, 0.05, 0.05, Outage(30.0, 20.0))
    assert parse_failures("stuck:0.05,stalls:0.1").stuck == 0.05
    for bad, says in [
        ("never-joins:2", "share of rooms from 0 to 1"),
        ("outage:30", "START+LENGTH"),
        ("hiccups:0.1", "unknown failure"),
        ("never-joins:0.6,leaves:0.6", "add up to more than 1"),
        ("leaves", "expected NAME:VALUE"),
    ]:
        with pytest.raises(ValueError, match=re.escape(says)):
            parse_failures(bad)


def test_an_outage_once_or_every_so_often() -> None:
    once, periodic = Outage(20.0, 10.0), Outage(20.0, 10.0, every=70.0)
    assert [once.index(t) for t in (19.9, 20.0, 29.9, 30.0, 90.0)] == [None, 0, 0, None, None]
    assert [periodic.index(t) for t in (19.9, 25.0, 30.0, 90.0, 99.9, 100.0, 165.0)] == [
        None,
        0,
        None,
        1,
        1,
        None,
        2,
    ]


def test_simulate_refuses_a_bad_failure_spec(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        simulate.parser().parse_args(["--failure", "outage:soon"])
    assert stopped.value.code == 2 and "outage is START+LENGTH" in capsys.readouterr().err


@pytest.fixture
async def hostile(engine: AsyncEngine, database_url: str, redis_url: str) -> AsyncIterator[str]:
    """Warden's web serving the rooms of `tests.support.hostile`; its URL."""
    await record_rooms(engine, time.time() - 60)
    settings = make_settings(database_url=database_url, redis_url=redis_url, warden_agent_name="notetaker")
    async with serve(create_app(settings)) as url:
        yield url


async def warden(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """`warden ARGV`'s output; it must succeed."""
    code, out = await run_cli(capsys, *argv)
    assert code == 0, out
    return out


async def test_rooms_prints_hostile_names_inert_one_row_each(
    hostile: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = await warden(capsys, "--url", hostile, "rooms")
    assert not [c for c in RAW if c in out]  # no escape sequence, bidi override or CR reaches the terminal
    assert "evil\\n2026-12-07" in out  # the newline shown, not obeyed: no forged row
    assert not [line for line in out.splitlines() if "FORGED" in line and "warden.worker" not in line]
    assert "[/][blink]markup" in out  # rich's markup shown as typed, not read
    assert "bidi\\u202eevil" in out
    assert "call-•••0100-dashed" in out and not [d for d in DIGITS if d in out]
    assert "x" * 201 not in out.replace("\n", "").replace("│", "").replace(" ", "")


async def test_room_prints_a_hostile_room_its_people_and_timeline_inert(
    hostile: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = await warden(capsys, "--url", hostile, "room", "RM_forge")
    assert not [c for c in RAW if c in out]
    assert out.splitlines()[0].startswith("evil\\n2026-12-07 03:00:00,000 ERROR warden.worker: FORGED")
    assert "caller\\x1b[2J\\x1b]0;pwned\\x07" in out
    sip = await warden(capsys, "--url", hostile, "room", "RM_sip")
    assert "phone-•••0123" in sip and not [d for d in DIGITS if d in sip]
    crowd = await warden(capsys, "--url", hostile, "room", "RM_crowd")
    assert "guest-08, guest-09 and 2 more   agents: none" in crowd  # a long list: its first ten
    markup = await warden(capsys, "--url", hostile, "room", "RM_markup")
    assert "[red]who[/red]" in markup


async def test_room_clips_a_long_name_and_identity(hostile: str, capsys: pytest.CaptureFixture[str]) -> None:
    out = (await warden(capsys, "--url", hostile, "room", "RM_long")).replace("\n", "")  # lines wrap at 200
    assert out.startswith(f"{LONG[:200]}…(50 more chars)")
    assert f"{LONG_IDENTITY[:200]}…(50 more chars)" in out and LONG[:201] not in out

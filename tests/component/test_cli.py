"""`warden check` against a stand-in LiveKit, the real Redis and a real database, and the simulator's
failure syntax: what an operator reads when something is wrong."""

from __future__ import annotations

import re

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from devtools import simulate
from devtools.simulator.livekit import FakeLiveKit
from devtools.simulator.serving import serve
from devtools.simulator.world import FailurePlan, Outage, parse_failures
from service.cli import check
from tests.support.settings import KEY, SECRET


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

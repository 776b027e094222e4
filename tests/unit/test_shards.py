"""`make test`'s shards (`tests.support.run`): each its own Redis database and reports, every module in
exactly one shard, and a run that cannot vouch for a shard's tests fails."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import port_claims, run
from tests.support.shared_redis import shared_redis_url


def test_every_module_in_one_shard_each_shard_its_own_redis_database_and_reports() -> None:
    planned = run.plan(3, 3)
    assert len({s.redis_db for s in planned}) == len(planned)
    assert all(run.FIRST_REDIS_DB <= s.redis_db <= run.LAST_REDIS_DB for s in planned)
    assert len({s.name for s in planned}) == len({s.junit for s in planned}) == len(planned)
    paths = [p for s in planned for p in s.paths]
    assert len(paths) == len(set(paths))
    e2e = sorted(f"tests/e2e/{p.name}" for p in (run.TESTS / "e2e").glob("test_*.py"))
    assert sorted(p for p in paths if p.startswith("tests/e2e/")) == e2e


def test_a_shard_that_ended_well_but_wrote_no_report_fails_the_run(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(run, "LOGS", tmp_path)
    monkeypatch.setattr(run, "ROOT", tmp_path.parent)
    reported, silent = run.Shard("fast", ["tests/unit"], 9), run.Shard("e2e", ["tests/e2e"], 10)
    case = '<testcase classname="tests.unit.test_x" name="test_y"/>'
    reported.junit.write_text(f"<testsuites><testsuite>{case}</testsuite></testsuites>")
    assert run._summary([reported, silent], [0, 0]) != 0
    said = capsys.readouterr().out
    assert "shard e2e: 0 passed, 1 failed, 0 skipped" in said and "no report" in said
    assert "tests: 1 passed, 1 failed, 0 skipped" in said
    silent.junit.write_text(reported.junit.read_text())
    assert run._summary([reported, silent], [0, 0]) == 0


def test_shards_have_loopback_port_ranges_apart_and_apart_from_the_runners_own() -> None:
    for fast, e2e in ((3, 3), (4, 3), (1, 1)):
        planned = run.plan(fast, e2e)
        ranges = [range(s.ports, s.ports + run.SHARD_PORTS) for s in planned]
        ranges.append(range(run.PORT_BLOCK - run.SHARD_PORTS, run.PORT_BLOCK))  # the runner, a focused run
        taken = [port for r in ranges for port in r]
        assert len(taken) == len(set(taken)) and max(taken) < run.PORT_BLOCK
    assert run.PORT_BLOCK % port_claims.SLOT == 0 and run.SHARD_PORTS == port_claims.SLOT
    assert port_claims.LAST_PORT <= 32768  # below the OS's ephemeral ports


def test_a_run_deletes_only_the_reports_and_logs_of_its_own_shards(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(run, "LOGS", tmp_path)
    planned = run.plan(2, 1)
    for shard in planned:
        shard.junit.write_text("last run's")
        shard.log.write_text("last run's")
    beside = [tmp_path / "test-e2e-2.xml", tmp_path / "test-e2e-2.log", tmp_path / "test-fast-3.xml"]
    for other in beside:  # a run beside this one with more shards is writing these
        other.write_text("a run beside")
    run.clear_stale(planned)
    assert not any(s.junit.exists() or s.log.exists() for s in planned)
    assert all(other.read_text() == "a run beside" for other in beside)


def test_only_a_shard_of_the_whole_suite_uses_the_machines_redis(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WARDEN_TEST_REDIS_DB", raising=False)
    assert shared_redis_url() is None  # a focused run: a private server, whatever answers at 6379

"""The worker's crash hook (`workers.jobs.runtime.faults`) stays silent unless armed for the very point and
notice; it fires (a SIGKILL, seen in tests/e2e/test_faults_outbox.py) at most once per marker file."""

from __future__ import annotations

from pathlib import Path

import pytest

from workers.core.room import Reason, ReportFailed, ScheduleDeadline
from workers.jobs.runtime import faults
from workers.store.outbox import Pending

DEADLINE = Pending("EV_1#0", "RM_1", ScheduleDeadline(1, 10.0, Reason.JOIN))


def armed(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(faults.VARIABLE, value)


def test_unset_or_without_notices_it_does_nothing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(faults.VARIABLE, raising=False)
    faults.after_commit([DEADLINE])
    armed(monkeypatch, f"after_commit:{tmp_path / 'marker'}")
    faults.after_commit([])
    assert not (tmp_path / "marker").exists()


@pytest.mark.parametrize("point", ["before_commit", "after_commit.ReportFailed", "after_commit"])
def test_another_point_another_kind_or_no_marker_does_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, point: str
) -> None:
    marker = "" if point == "after_commit" else str(tmp_path / "marker")
    armed(monkeypatch, f"{point}:{marker}")
    faults.after_commit([DEADLINE])
    assert not (tmp_path / "marker").exists()


def test_a_marker_left_by_an_earlier_kill_disarms_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "marker").touch()
    armed(monkeypatch, f"after_commit.ReportFailed:{tmp_path / 'marker'}")
    faults.after_commit([DEADLINE, Pending("EV_1#1", "RM_1", ReportFailed("refused", 0))])  # still alive


def test_mid_batch_fires_only_when_armed_for_it_and_not_twice(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    kills: list[int] = []
    monkeypatch.setattr(faults.os, "kill", lambda pid, _signal: kills.append(pid))
    armed(monkeypatch, f"after_commit:{tmp_path / 'marker'}")
    faults.mid_batch()  # armed for another point
    assert kills == [] and not (tmp_path / "marker").exists()
    armed(monkeypatch, f"mid_batch:{tmp_path / 'marker'}")
    faults.mid_batch()
    faults.mid_batch()  # the marker disarms it
    assert len(kills) == 1 and (tmp_path / "marker").exists()

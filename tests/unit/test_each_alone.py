"""A run that does the same for many rooms or agents at once (`workers.jobs.runtime.retry.each_alone`):
one's failure is its own, logged at ERROR and counted, the others' results kept; an outage, which the
others would meet alike, ends the run."""

from __future__ import annotations

import asyncio

import pytest
from arq.worker import Retry
from prometheus_client import REGISTRY
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy.exc import DataError, OperationalError

from workers.jobs.runtime.retry import each_alone

NAMES = ["call-1", "call-2", "call-3"]


def passed_over(run: str) -> float:
    return REGISTRY.get_sample_value("warden_passed_over_total", {"run": run}) or 0.0


def test_one_failure_is_its_own_and_the_others_results_are_kept(caplog: pytest.LogCaptureFixture) -> None:
    refused = DataError("INSERT ...", {}, ValueError("value too long"))
    before = passed_over("liveness")
    assert each_alone("liveness", "room", NAMES, [True, ValueError("a bug"), refused]) == [True, None, None]
    assert "room call-2 passed over in this run: ValueError" in caplog.text
    assert "room call-3 passed over in this run: DataError" in caplog.text
    # Nothing but an outage should fail one room: a bug, seen (ERROR, its traceback) and counted.
    assert [r.levelname for r in caplog.records] == ["ERROR", "ERROR"]
    assert all(r.exc_info is not None for r in caplog.records)
    assert passed_over("liveness") == before + 2


@pytest.mark.parametrize(
    "outage",
    [
        Retry(defer=1),
        OperationalError("SELECT ...", {}, TimeoutError("database is locked")),
        ConnectionRefusedError(111, "Connect call failed"),
        RedisConnectionError("Connection refused"),
        asyncio.CancelledError(),
    ],
    ids=["retry", "operational", "refused", "redis", "cancelled"],
)
def test_an_outage_ends_the_run(outage: BaseException) -> None:
    with pytest.raises(type(outage)):
        each_alone("liveness", "room", NAMES, [True, ValueError("a bug"), outage])

"""A run that does the same for many rooms or agents at once (`workers.jobs.runtime.retry.each_alone`):
one's failure is its own, logged, the others' results kept; an outage, which the others would meet
alike, ends the run."""

from __future__ import annotations

import asyncio

import pytest
from arq.worker import Retry
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy.exc import DataError, OperationalError

from workers.jobs.runtime.retry import each_alone

NAMES = ["call-1", "call-2", "call-3"]


def test_one_failure_is_its_own_and_the_others_results_are_kept(caplog: pytest.LogCaptureFixture) -> None:
    refused = DataError("INSERT ...", {}, ValueError("value too long"))
    assert each_alone(NAMES, [True, ValueError("a bug"), refused], "room") == [True, None, None]
    assert "room call-2 passed over in this run: ValueError" in caplog.text
    assert "room call-3 passed over in this run: DataError" in caplog.text


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
        each_alone(NAMES, [True, ValueError("a bug"), outage], "room")

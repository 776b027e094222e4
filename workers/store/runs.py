"""What a run over many items (the rooms a cron looks at, the agents whose incidents a sweep settles,
the tables retention prunes, the canaries of a tick) does when one item fails.

- `ends_the_run(exc)`: what every item would meet alike ends the run, whose next one tries again: a
  cancellation or an exit, a job's `Retry` (raised when the database is unavailable to record), the
  database or Redis unavailable (`engine.outage`).
- `passed_over(run, what, name, exc)`: anything else is that item's alone, and, since nothing but an
  outage should fail an item, a bug or a value Warden cannot hold: logged at ERROR with its traceback
  (`workers.logs` masks and escapes it) and counted in `warden_passed_over_total{run}`, so that a room
  a bug meets at every run is seen, not a quiet line repeated for ever. The run goes on with the others.
"""

from __future__ import annotations

import logging

from arq.worker import Retry
from prometheus_client import Counter

from workers.store.engine import outage

log = logging.getLogger("warden.worker")

PASSED_OVER = Counter(
    "warden_passed_over_total",
    "Items a periodic run passed over because they failed on their own (a bug, or a value Warden cannot "
    "hold), by run (reconcile, discover, liveness, canaries, settle, retention)",
    ["run"],
)


def ends_the_run(exc: BaseException) -> bool:
    """Whether `exc`, met by one item, ends the run (see the module)."""
    return not isinstance(exc, Exception) or isinstance(exc, Retry) or outage(exc)


def passed_over(run: str, what: str, name: str, exc: BaseException) -> None:
    """Say that the run `run` passed over `what` `name` (an agent, a room, a table) for `exc`."""
    PASSED_OVER.labels(run).inc()
    log.error(
        "%s %s passed over in this run: %s (%s tries it again at its next)",
        what,
        name,
        type(exc).__name__,
        run,
        exc_info=exc,
    )

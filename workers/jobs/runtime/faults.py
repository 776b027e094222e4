"""A test hook, not a setting: `WARDEN_FAULT_AT` makes the worker kill itself with SIGKILL at a named
point, once, so that end-to-end tests can crash it exactly where a crash hurts most.

The value is `<point>:<marker file>`. The points: `after_commit`, right after the commit of a batch that
decided notices, before any of them is delivered (`after_commit.<Kind>` fires only when those notices
include one of that kind: `after_commit.ReportFailed`); `mid_batch`, in a batch of rooms
(`workers.jobs.rooms.batch`: recovery in bulk, a burst of deadlines) as soon as one of its rooms was
re-dispatched, before that is recorded. The marker file is created (exclusively) just before the kill,
and an existing marker disarms the hook: it fires once however many processes inherit the variable.
Unset, as everywhere but in tests/e2e/test_faults_outbox.py, it does nothing. It is read here rather than
in `workers.settings` because no deployment should ever find it among Warden's settings.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Sequence

from workers.store.outbox import Pending

VARIABLE = "WARDEN_FAULT_AT"
AFTER_COMMIT = "after_commit"
MID_BATCH = "mid_batch"


def after_commit(notices: Sequence[Pending]) -> None:
    """The `after_commit` point: die here if the hook is armed for it and `notices` match."""
    hook = os.environ.get(VARIABLE)
    if not hook or not notices:
        return
    point, _, marker = hook.partition(":")
    name, _, kind = point.partition(".")
    if name != AFTER_COMMIT or not marker or (kind and all(n.action_name != kind for n in notices)):
        return
    _die(marker)


def mid_batch() -> None:
    """The `mid_batch` point: die here if the hook is armed for it."""
    point, _, marker = os.environ.get(VARIABLE, "").partition(":")
    if point == MID_BATCH and marker:
        _die(marker)


def _die(marker: str) -> None:
    """SIGKILL this process, unless `marker` exists (the hook fired already); create it first."""
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:  # fired already, in this process or another
        return
    os.kill(os.getpid(), signal.SIGKILL)

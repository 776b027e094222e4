"""What the incident machine decides (`workers.core.incident`), as data for its caller to carry out."""

from __future__ import annotations

from dataclasses import dataclass

from workers.core.alerts import Notify


@dataclass(frozen=True)
class Restart:
    """Restart the deployment: `RestartAgent` and/or the deploy hook, as `legs` say."""

    legs: tuple[str, ...]


@dataclass(frozen=True)
class Rollback:
    """Roll the Cloud agent back to its previous version."""


@dataclass(frozen=True)
class FreshStarts:
    """Every room still waiting for the agent joins the incident and is re-checked `wait` seconds on
    (None: `restart_grace`); `when` says it in the log."""

    wait: float | None
    when: str


@dataclass(frozen=True)
class WatchComeback:
    """Watch the Cloud deployment come back (answered with RUNNING_AGAIN, or nothing)."""


@dataclass(frozen=True)
class Note:
    """A line of the incident's log, written with its new state; `carried_out` False for a decision
    observe mode records and does not make (`workers.core.observing`)."""

    action: str
    outcome: str
    carried_out: bool = True


@dataclass(frozen=True)
class Resolve:
    """The outage is over: forget the breaches its window counted."""


Decision = Notify | Restart | Rollback | FreshStarts | WatchComeback | Note | Resolve

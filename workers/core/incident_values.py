"""The incident machine's values (`workers.core.incident`): its states and signals, the incident, the
reports that move it, its policy, and a step's outcome. Plain frozen data.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from workers.core import alerts
from workers.core.alerts import AlertRoute, Notify
from workers.core.incident_decisions import Decision

CLOUD, HOOK = "cloud", "hook"  # the legs of a restart: LiveKit Cloud's RestartAgent, the deploy hook
OUTAGE, CAPACITY = "outage", "capacity"  # an incident's kind: its workers are gone, or full
UNJOINED_JOBS = 3  # jobs one worker took whose agent never came, within the window, that name it


class IncidentState(StrEnum):
    """Where an incident is (the `state` column of its row)."""

    NEW = "new"  # being opened: never stored
    OPEN = "open"  # opened, no restart of its own under way (a failed one's cooldown runs)
    RESTARTING = "restarting"  # its deployment's restart is claimed, by it or by another incident
    RESTARTED = "restarted"  # a restart landed: the waiting rooms got a fresh start
    NOT_RESTARTED = "not_restarted"  # nothing to restart, or every leg failed for good
    ROLLING_BACK = "rolling_back"  # a room failed after the restart: followed up, rollback claimed
    FOLLOWED_UP = "followed_up"  # a room failed after the restart: followed up, nothing more to try
    RESOLVED = "resolved"  # no room waits any more


class Signal(StrEnum):
    """What moves an incident."""

    OUTAGE = "outage"  # enough rooms missed their SLA within the window
    ROOM_FAILED = "room_failed"  # a room's re-dispatches are used up, or LiveKit refused
    SWEPT = "swept"  # the periodic sweep looks at the open incidents
    RESTART_LANDED = "restart_landed"  # the deployment's restart landed (a Cloud restart, a deploy hook)
    RESTART_FAILED = "restart_failed"  # every leg of the deployment's restart failed for good
    RUNNING_AGAIN = "running_again"  # the Cloud deployment runs again after the restart
    ROLLBACK_DONE = "rollback_done"  # landed, or refused for good (a retryable failure waits for the lease)
    RECOVERED = "recovered"  # no room of the incident waits any more
    CANARY_FAILED = "canary_failed"  # the agent's canaries failed `failures` times in a row
    CANARY_PASSED = "canary_passed"  # a canary of the agent passed
    CAPACITY = "capacity"  # LiveKit refused a room's job for want of capacity (JSR_NO_CAPACITY)
    ACKNOWLEDGED = "acknowledged"  # an operator acknowledged it (`Report.by`): no more follow-up alerts
    RESTART_ASKED = "restart_asked"  # an operator asked for its deployment's restart now (`Report.by`)
    MAINTENANCE_STARTED = "maintenance_started"  # a maintenance window covers the agent now
    MAINTENANCE_ENDED = "maintenance_ended"  # no maintenance window covers the agent any more
    HANDED_OVER = "handed_over"  # act mode took over an incident observe mode decided in (`observing`)


@dataclass(frozen=True)
class DeploymentRestart:
    """The last restart of a deployment, as the store read it under the deployment's lock."""

    claimed_at: float | None = None
    pending: tuple[str, ...] = ()  # the legs called, with no outcome yet
    landed_at: float | None = None

    @property
    def under_way(self) -> bool:
        return self.claimed_at is not None and bool(self.pending) and self.landed_at is None

    @property
    def failed(self) -> bool:
        return self.claimed_at is not None and not self.pending and self.landed_at is None

    def outcome(self, leg: str, landed: bool, at: float) -> DeploymentRestart:
        """The restart once `leg` has its outcome: landed as soon as one leg lands (a later leg changes
        nothing), failed once no leg is left to land."""
        if self.landed_at is not None:
            return self
        if landed:
            return replace(self, pending=(), landed_at=at)
        return replace(self, pending=tuple(p for p in self.pending if p != leg))


@dataclass(frozen=True)
class Incident:
    """One agent's outage, as the machine sees it (its rooms and log are the store's)."""

    id: str
    agent_name: str
    state: IncidentState = IncidentState.NEW
    reason: str = ""
    opened_at: float = 0.0
    restarted_at: float | None = None
    rollback_claimed_at: float | None = None
    resolved_at: float | None = None
    canary_failing: bool = False  # the agent's canaries fail: rooms recovering do not resolve it
    kind: str = OUTAGE  # CAPACITY: its workers are full, and a restart adds no capacity
    # the workers named, with the jobs each took in the window whose agent never came, when named
    workers: tuple[tuple[str, int], ...] = ()
    acknowledged_at: float | None = None  # an operator acknowledged it, then (named `acknowledged_by`)
    acknowledged_by: str = ""
    maintenance: bool = False  # in maintenance: no restart, rollback or hook, no alert (rule 12)


@dataclass(frozen=True)
class Report:
    """A signal and the facts it comes with; which facts a signal uses is said beside each."""

    signal: Signal
    at: float
    reason: str = ""  # OUTAGE, ROOM_FAILED, CANARY_FAILED: why
    rooms: int = 0  # OUTAGE: rooms affected so far; RECOVERED, CANARY_PASSED: rooms of the incident
    waiting: int = 0  # ROOM_FAILED, CANARY_FAILED, CANARY_PASSED: rooms of the incident still waiting
    room: str = ""  # ROOM_FAILED: the room's name; CANARY_FAILED, CAPACITY: the canary's room
    canary: bool = False  # CAPACITY: a canary's job refused (the incident stays open until one passes)
    leg: str = ""  # RESTART_LANDED: the leg that landed (a Cloud restart's deployment is watched)
    landed: bool = False  # ROLLBACK_DONE: it landed (else it was refused for good)
    after: float = 0.0  # RUNNING_AGAIN: seconds from the restart to running replicas
    # OUTAGE, ROOM_FAILED, CANARY_FAILED, SWEPT, RESTART_ASKED
    restart: DeploymentRestart = DeploymentRestart()
    by: str = ""  # ACKNOWLEDGED, RESTART_ASKED: the operator's name (a token's name, never the token)
    # any: the workers that took `UNJOINED_JOBS` or more jobs in the window whose agent never came, and
    # how many each
    workers: tuple[tuple[str, int], ...] = ()
    # any: the maintenance window covering the agent now, as its log says it ("" for none); a report
    # whose window differs from the incident's mark starts or ends its maintenance first (rule 12)
    maintenance: str = ""
    # HANDED_OVER: the alert routes on which an alert of the incident went out (and may be open there)
    alerted: tuple[str, ...] = ()


@dataclass(frozen=True)
class IncidentPolicy:
    """What the machine is told from outside, as plain values: the agent's deployment (a Cloud agent,
    a deploy hook) and what it is called in alerts (`doing`), its rules of time, the alert routes."""

    cloud: bool = False
    hook: bool = False
    rollback: bool = False  # roll a Cloud agent back when its restart did not help
    cooldown: float = 300.0
    lease: float = 60.0
    restart_grace: float = 20.0
    doing: str = ""  # "LiveKit Cloud agent restart and deploy hook"
    routes: tuple[AlertRoute, ...] = ()
    observe: bool = False  # observe mode: decided and recorded, not carried out (`workers.core.observing`)
    observe_alerts: bool = False  # and yet alerts go out, marked as from observe mode

    @property
    def legs(self) -> tuple[str, ...]:
        return (CLOUD,) * self.cloud + (HOOK,) * self.hook


def tell(incident: Incident, policy: IncidentPolicy, step: str, text: str) -> tuple[Notify, ...]:
    """The alert of `step` on every route that takes it; none while the incident is in maintenance."""
    return () if incident.maintenance else alerts.notify(policy.routes, step, text)


# --- decisions (`workers.core.incident_decisions`) ------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """The incident after a report, what it decided, and the deployment's restart when it claimed it."""

    incident: Incident
    decisions: tuple[Decision, ...] = ()
    restart: DeploymentRestart | None = None

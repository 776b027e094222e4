"""Database tables: one row per room (its folded state) and one per expected agent of each room, an
append-only event log, incidents and their deployments' restarts, the outbox of side effects to deliver,
and dead letters."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Enum, Index, Table, literal_column
from sqlmodel import Field, SQLModel

from workers.core.room import Phase, Recovery

# The rooms Warden has not seen finish, spelled as a literal (not a bound parameter) so that PostgreSQL
# and SQLite match it to the partial index below in every plan, generic ones included.
OPEN_PHASE = literal_column("phase") != literal_column(f"'{Phase.CLOSED.value}'")


def _checked(enum: type[StrEnum], name: str) -> Enum:
    """A column type holding `enum`'s values as strings, which the database checks (constraint `name`)
    and SQLAlchemy binds and reads as the enum's members: SQL never spells a phase by hand."""
    return Enum(
        enum,
        name=name,
        native_enum=False,  # a string and a CHECK: no PostgreSQL type to alter when a value is added
        create_constraint=True,
        length=32,
        validate_strings=True,
        values_callable=lambda members: [m.value for m in members],
    )


PHASE = _checked(Phase, "ck_room_agents_phase")
RECOVERY = _checked(Recovery, "ck_room_agents_recovery")


class RoomRow(SQLModel, table=True):
    """A room's current state, folded from its events. `version` guards concurrent writers;
    `confirmed_at` is when reconciliation last found it as Warden knows it (no event is written then)."""

    __tablename__ = "rooms"
    __table_args__ = (
        # Retention: closed rooms, oldest first. Reconciliation: the open ones, without the closed.
        Index("ix_rooms_phase_updated_at", "phase", "updated_at"),
        Index("ix_rooms_open", "updated_at", postgresql_where=OPEN_PHASE, sqlite_where=OPEN_PHASE),
    )

    sid: str = Field(primary_key=True, max_length=64)
    name: str = Field(index=True, max_length=256)
    phase: str = Field(index=True, max_length=32)
    state: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    version: int = 0
    last_created_at: int = 0
    last_rank: int = 0
    first_seen_at: float = Field(index=True)
    updated_at: float
    deadline_at: float | None = Field(default=None, index=True)
    recovery: str = Field(default=Recovery.NONE.value, max_length=32)
    time_to_agent: float | None = None  # seconds from the first person to the first agent of ours
    confirmed_at: float | None = None


class RoomAgentRow(SQLModel, table=True):
    """One expected agent of a room (`workers.store.room_agents.rows`): its phase, recovery and next
    deadline, so that the store can ask which rooms wait for *this* agent. Written only by the room
    writer, in the room's transaction; deleted with the room."""

    __tablename__ = "room_agents"
    # Escalation: the rooms of one agent in the phases where its people wait for it.
    __table_args__ = (Index("ix_room_agents_agent_phase", "agent", "phase"),)

    room_sid: str = Field(primary_key=True, max_length=64)
    agent: str = Field(primary_key=True, max_length=128)
    phase: Phase = Field(sa_column=Column(PHASE, nullable=False))
    recovery: Recovery = Field(sa_column=Column(RECOVERY, nullable=False))
    deadline_at: float | None = None
    waiting_since: float | None = None
    redispatches: int = 0
    updated_at: float


class SliOutcomeRow(SQLModel, table=True):
    """One (room, agent)'s service levels once its fate is known (`workers.core.sli`): written once, in
    the room's transaction, by the room writer (`workers.store.sli_outcomes`); read over the SLO window."""

    __tablename__ = "sli_outcomes"
    # The API, the dashboard and `warden slo`: the outcomes decided in the window, by agent.
    __table_args__ = (Index("ix_sli_outcomes_decided_at", "decided_at", "agent"),)

    room_sid: str = Field(primary_key=True, max_length=64)
    agent: str = Field(primary_key=True, max_length=128)
    room_name: str = Field(max_length=256)
    decided_at: float
    on_time: bool
    served: bool
    how: str = Field(max_length=32)


class RoomCheckpointRow(SQLModel, table=True):
    """A room's state before the first webhook of a window of seconds (`workers.store.checkpoints`): two a
    room (`slot`), so that a late webhook is folded in from near its place. Written only by the room
    writer, in the room's transaction; deleted with the room."""

    __tablename__ = "room_checkpoints"

    room_sid: str = Field(primary_key=True, max_length=64)
    slot: int = Field(primary_key=True)
    second: int
    seq: int
    newest: int
    state: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))


class EventRow(SQLModel, table=True):
    """One received webhook (reduced, secret-free); `event_id` is unique, so a duplicate is a no-op."""

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_room_sid_seq", "room_sid", "seq"),)

    seq: int | None = Field(default=None, primary_key=True)
    event_id: str = Field(unique=True, max_length=128)
    room_sid: str | None = Field(default=None, max_length=64)
    kind: str = Field(max_length=64)
    name: str = Field(max_length=64)
    participant_identity: str | None = Field(default=None, max_length=256)
    created_at: int
    received_at: float
    data: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))


class IncidentRow(SQLModel, table=True):
    """An outage of one agent: opened once, joined by every room it hurts, resolved once.

    `open_key` holds the agent name while the incident is open and is unique, so concurrent workers
    that see the same outage all land in one incident. `state` is its state in the incident machine
    (`workers.core.incident`), changed only under the row's lock (`workers.store.incident_steps`), so
    each step (the opening alert, the restart, the follow-up) happens once. `deployment` is whose
    restart it takes or shares (`DeploymentRestartRow`)."""

    __tablename__ = "incidents"

    id: str = Field(primary_key=True, max_length=32)
    agent_name: str = Field(index=True, max_length=128)
    open_key: str | None = Field(default=None, unique=True, max_length=128)
    reason: str = Field(max_length=512)
    opened_at: float = Field(index=True)
    resolved_at: float | None = Field(default=None, index=True)
    state: str = Field(default="open", max_length=32)
    deployment: str = Field(default="", index=True, max_length=128)
    restarted_at: float | None = None
    rollback_claimed_at: float | None = None  # the rollback's lease: claimed again once it runs out
    canary_failing: bool = False  # the agent's canaries fail: the incident stays open without rooms
    kind: str = Field(default="outage", max_length=16)  # or "capacity": its workers are full
    # the workers it names, as JSON [[worker id, jobs], ...] (`workers.store.incident_steps`)
    workers: str = Field(default="", max_length=1024)
    # an operator acknowledged it (issue 28): when, and the name of their token (never the token)
    acknowledged_at: float | None = None
    acknowledged_by: str = Field(default="", max_length=64)
    maintenance: bool = False  # a maintenance window covers its agent: no restart, no alert (rule 12)


class MaintenanceWindowRow(SQLModel, table=True):
    """An operator's maintenance window over one agent (or `*`, every agent): from `starts_at` until
    `until`, or `ended_at` when ended early; kept afterwards as history (`workers.store.maintenance`)."""

    __tablename__ = "maintenance_windows"

    id: int | None = Field(default=None, primary_key=True)
    agent: str = Field(max_length=128)
    starts_at: float
    until: float = Field(index=True)
    reason: str = Field(default="", max_length=500)
    by: str = Field(max_length=128)
    ended_at: float | None = None


class CanaryRunRow(SQLModel, table=True):
    """One canary run (`workers.core.canary`): its number `n` names its room. A run still `running`
    whose worker died is finished (`interrupted`, its room deleted) by the agent's next run."""

    __tablename__ = "canary_runs"
    __table_args__ = (Index("ix_canary_runs_agent_n", "agent_name", "n"),)

    n: int | None = Field(default=None, primary_key=True)
    agent_name: str = Field(max_length=128)
    room: str = Field(max_length=256)
    started_at: float = Field(index=True)
    outcome: str = Field(default="running", max_length=16)
    seconds: float | None = None  # from the dispatch to the agent in the room
    finished_at: float | None = None
    detail: str = Field(default="", max_length=512)


class DeploymentRestartRow(SQLModel, table=True):
    """A deployment's last restart (a Cloud agent id, a deploy hook's hashed URL, or both, as
    `workers.escalation.policy.deployment_key` spells it): when it was claimed, the legs called with no
    outcome yet, when it landed. Its row lock is what makes one restart of a deployment, however many
    incidents of its agents report at once; its claim is the cooldown they share."""

    __tablename__ = "deployment_restarts"

    deployment: str = Field(primary_key=True, max_length=128)
    claimed_at: float | None = None
    pending: str = Field(default="", max_length=32)  # "cloud,hook"
    landed_at: float | None = None


class IncidentRoomRow(SQLModel, table=True):
    """A room an incident covers; `recovered_at` once it no longer needs an agent: when its recovery is
    reported, or, for a room that never reports one (it got its agent before missing an SLA), when the
    sweep (every `WARDEN_SWEEP_SECONDS`) or the incident's last recovery finds it needing nothing."""

    __tablename__ = "incident_rooms"

    incident_id: str = Field(primary_key=True, max_length=32)
    room_sid: str = Field(primary_key=True, max_length=64, index=True)
    room_name: str = Field(max_length=256)
    added_at: float
    recovered_at: float | None = None


class IncidentActionRow(SQLModel, table=True):
    """What Warden did about an incident, and how it went."""

    __tablename__ = "incident_actions"

    seq: int | None = Field(default=None, primary_key=True)
    incident_id: str = Field(index=True, max_length=32)
    at: float
    action: str = Field(max_length=64)
    outcome: str = Field(max_length=1024)
    carried_out: bool = True  # False: decided in observe mode and not made (`workers.core.observing`)
    landed_on: str | None = Field(default=None, max_length=32)  # an alert's route key, once it landed


class OutboxRow(SQLModel, table=True):
    """A side effect the machine decided, written in the transaction of the state that decided it and
    deleted once delivered. `id` is deterministic (the deciding event's id and the action's place), so
    a decision recorded twice is one row; `lease_until` keeps a second deliverer away meanwhile."""

    __tablename__ = "outbox"

    id: str = Field(primary_key=True, max_length=160)
    room_sid: str | None = Field(default=None, max_length=64)
    kind: str = Field(max_length=32)
    payload: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    created_at: float
    due_at: float = Field(index=True)
    attempts: int = 0
    lease_until: float | None = None
    last_error: str | None = Field(default=None, max_length=512)


class DeadLetterRow(SQLModel, table=True):
    """A job that kept failing for a reason no retry fixes: what it was given, and why it failed."""

    __tablename__ = "dead_letters"

    id: str = Field(primary_key=True, max_length=160)
    function: str = Field(max_length=64)
    args: list[Any] = Field(sa_column=Column(JSON, nullable=False))
    room_sid: str | None = Field(default=None, max_length=64)
    room_name: str | None = Field(default=None, max_length=256)
    error: str = Field(max_length=2048)
    attempts: int
    failed_at: float = Field(index=True)
    retried_at: float | None = None
    retried_by: str | None = Field(default=None, max_length=64)  # the operator who asked (a token's name)


# The tables as SQLAlchemy Core sees them, for the statements that bypass the ORM (store, incidents).
ROOMS: Table = RoomRow.__table__  # type: ignore[attr-defined]
ROOM_AGENTS: Table = RoomAgentRow.__table__  # type: ignore[attr-defined]
EVENTS: Table = EventRow.__table__  # type: ignore[attr-defined]
ROOM_CHECKPOINTS: Table = RoomCheckpointRow.__table__  # type: ignore[attr-defined]
INCIDENTS: Table = IncidentRow.__table__  # type: ignore[attr-defined]
INCIDENT_ROOMS: Table = IncidentRoomRow.__table__  # type: ignore[attr-defined]
INCIDENT_ACTIONS: Table = IncidentActionRow.__table__  # type: ignore[attr-defined]
DEPLOYMENT_RESTARTS: Table = DeploymentRestartRow.__table__  # type: ignore[attr-defined]
OUTBOX: Table = OutboxRow.__table__  # type: ignore[attr-defined]
DEAD_LETTERS: Table = DeadLetterRow.__table__  # type: ignore[attr-defined]
CANARY_RUNS: Table = CanaryRunRow.__table__  # type: ignore[attr-defined]
SLI_OUTCOMES: Table = SliOutcomeRow.__table__  # type: ignore[attr-defined]
MAINTENANCE_WINDOWS: Table = MaintenanceWindowRow.__table__  # type: ignore[attr-defined]

"""Maintenance windows: an operator says an agent (or `*`, every agent) is being worked on until a
time; while a window covers an agent its incidents claim no restart, rollback or deploy hook and send
no alert (rule 12 of `workers.core.incident`). Windows are kept once over (ended in time, or early:
`ended_at`) as the history the API and the dashboard list, newest first.

The incident steps read the window covering an agent per decision, in their own transaction
(`covering`): a window started through the API takes effect on the next decision, with no cache.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from workers.core.shown import shown
from workers.store.engine import writing
from workers.store.models import MAINTENANCE_WINDOWS

W = MAINTENANCE_WINDOWS.c
EVERY_AGENT = "*"
REASON_CHARS = 500  # the column's width
RECENT = 50  # windows listed: every active one, and the newest others up to this many


@dataclass(frozen=True)
class Window:
    """One maintenance window."""

    id: int
    agent: str
    starts_at: float
    until: float
    reason: str
    by: str
    ended_at: float | None = None

    def active(self, now: float) -> bool:
        return self.ended_at is None and self.starts_at <= now < self.until

    @property
    def ends(self) -> float:
        """When it ended, or ends."""
        return self.until if self.ended_at is None else min(self.ended_at, self.until)

    def said(self) -> str:
        """The window as an incident's log says it (its values shown as Warden shows sent text)."""
        who = "every agent" if self.agent == EVERY_AGENT else f"agent {shown(self.agent)}"
        reason = f": {shown(self.reason, REASON_CHARS)}" if self.reason else ""
        return (
            f"maintenance window {self.id} over {who} until {hhmm(self.until)}, by {shown(self.by)}{reason}"
        )


def hhmm(at: float) -> str:
    """`at` as the time of day in UTC ("12:30 UTC")."""
    return time.strftime("%H:%M UTC", time.gmtime(at))


def _window(row: Row[Any]) -> Window:
    return Window(row.id, row.agent, row.starts_at, row.until, row.reason, row.by, row.ended_at)


async def start(engine: AsyncEngine, agent: str, seconds: float, reason: str, by: str, now: float) -> Window:
    """A window over `agent` (or `*`) from now for `seconds`."""
    async with writing(engine) as connection:
        found = await connection.execute(
            insert(MAINTENANCE_WINDOWS)
            .values(agent=agent, starts_at=now, until=now + seconds, reason=reason, by=by)
            .returning(MAINTENANCE_WINDOWS)
        )
        return _window(found.one())


async def end(engine: AsyncEngine, window_id: int, now: float) -> Window | Literal["unknown", "over"]:
    """End window `window_id` now: the window as ended, "unknown", or "over" (ended already, or run out)."""
    async with writing(engine) as connection:
        row = (
            await connection.execute(select(MAINTENANCE_WINDOWS).where(W.id == window_id).with_for_update())
        ).first()
        if row is None:
            return "unknown"
        if not _window(row).active(now):
            return "over"
        await connection.execute(update(MAINTENANCE_WINDOWS).where(W.id == window_id).values(ended_at=now))
        return Window(row.id, row.agent, row.starts_at, row.until, row.reason, row.by, now)


async def recent(engine: AsyncEngine, now: float, limit: int = RECENT) -> list[Window]:
    """Every active window and the newest `limit` windows, newest first."""
    async with engine.connect() as connection:
        newest = await connection.execute(select(MAINTENANCE_WINDOWS).order_by(W.id.desc()).limit(limit))
        active = await connection.execute(select(MAINTENANCE_WINDOWS).where(*_active(now)))
        found = {row.id: _window(row) for rows in (newest, active) for row in rows}
    return sorted(found.values(), key=lambda w: w.id, reverse=True)


async def active(engine: AsyncEngine, now: float) -> list[Window]:
    """The windows active now, newest first (the dashboard's banner)."""
    async with engine.connect() as connection:
        found = await connection.execute(
            select(MAINTENANCE_WINDOWS).where(*_active(now)).order_by(W.id.desc()).limit(RECENT)
        )
        return [_window(row) for row in found]


async def covering(connection: AsyncConnection, agent: str, now: float) -> Window | None:
    """The window covering `agent` now (its own or every agent's; the one lasting longest), or None."""
    row = (await connection.execute(_COVERING, {"now": now, "agent": agent, "every": EVERY_AGENT})).first()
    return _window(row) if row is not None else None


def _active(now: float) -> tuple[Any, ...]:
    return (W.until > now, W.ended_at.is_(None), W.starts_at <= now)


# Built once: every incident step asks it (constructing a statement costs more than executing it).
_COVERING = (
    select(MAINTENANCE_WINDOWS)
    .where(
        W.until > bindparam("now"),
        W.ended_at.is_(None),
        W.starts_at <= bindparam("now"),
        W.agent.in_((bindparam("agent"), bindparam("every"))),
    )
    .order_by(W.until.desc(), W.id.desc())
    .limit(1)
)

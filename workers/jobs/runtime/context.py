"""The worker's context: what every job needs, built once at start-up (`workers.jobs.runtime.lifecycle`).

ARQ hands each job a dict (`ctx`) holding its own keys (`redis`, `job_try`, ...); Warden keeps one
typed `WorkerContext` in it, under `CONTEXT_KEY`, read with `context(ctx)`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from workers.core.rules import Rules
from workers.jobs.canaries.runner import Canaries
from workers.jobs.delivery.outbox import Delivered
from workers.jobs.rooms.effects import Effects
from workers.jobs.rooms.looked import Looked
from workers.settings import Settings
from workers.store.group import GroupCommit

CONTEXT_KEY = "warden"


@dataclass(frozen=True)
class WorkerContext:
    """The settings, the database, the rules of which agents rooms expect, the adapters. `closers` are
    awaited at shutdown, in order. (A room's writes are serialised in this process by the group commit,
    which records its batches in the order they came, and across processes by the database.)"""

    settings: Settings
    engine: AsyncEngine
    rules: Rules
    committer: GroupCommit
    effects: Effects
    delivered: Delivered
    closers: tuple[Callable[[], Awaitable[None]], ...] = ()
    canaries: Canaries | None = None  # the configured agents' canaries (none configured: None)
    looked: Looked = field(default_factory=Looked)  # the rooms the `liveness` cron has read


def context(ctx: dict[str, Any]) -> WorkerContext:
    """The worker's context, from the `ctx` ARQ passes to a job."""
    found = ctx[CONTEXT_KEY]
    assert isinstance(found, WorkerContext), "the worker's startup did not run"
    return found

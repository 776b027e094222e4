"""Group commit: the batches of concurrent jobs are recorded together, in one transaction.

Under load a worker runs dozens of jobs at once, each recording one room's events. Done one by one,
each costs a transaction of four statements, and SQLAlchemy's per-statement work, not the database,
is what limits the worker. `GroupCommit.record` hands a room's batch to a flusher that takes the
batches waiting, in the order they came, and records them with `record_group`, which writes a group
as cheaply as one batch (`writer.record_in`): a room's batches one after the other, its row written
once. A room gives a group at most `ROOM_BATCHES` batches, so that a room's storm (thousands of jobs
of one room at once) is recorded in few large transactions, each with the other rooms' batches waiting
beside it: one room never holds up the others. Jobs run concurrently, so a room's webhooks may reach
the flusher in another order than they came in: those waiting together are handed over in lifecycle
order within their second (`order.lifecycle_key`; Warden's own events stay where they are, and
nothing moves past them). At low load a flush holds one batch, and costs what
recording it alone would. Each caller gets exactly what `writer.record_events` would have returned for
its batch, recorded in that order.

One batch's failure is that batch's alone. One whose values the database cannot store
(`workers.store.unstorable`) gets `UnstorableEvent`, and the group is recorded again in halves until
it is left out; a conflict with another worker, or a bug that one room's events meet, makes the group
record one room at a time. Only an unavailable database fails the whole group (every job retries).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from workers.core import order
from workers.core.room import Policy
from workers.core.rules import Rules
from workers.store import unstorable
from workers.store.engine import writing
from workers.store.writer import Batch, Recorded, as_rules, record_events, record_in

MAX_GROUP = 500
ROOM_BATCHES = 100  # a room's batches in one group at most (the rest wait for the next, in order)


async def record_group(
    engine: AsyncEngine, batches: Sequence[Batch], *, rules: Rules | Policy
) -> list[Recorded | Exception]:
    """Record `batches` (each one room's events; a room's batches in the order given) in one transaction;
    one result each.
    A batch the database cannot store fails alone (its result is `UnstorableEvent`) and the others are
    recorded without it; a conflict with another worker's writes, or a batch that fails on its own,
    makes it record them one room at a time instead, so that one room's failure is that room's alone
    (its result is the exception). An unavailable database fails them all (their jobs retry)."""
    results: dict[int, Recorded | Exception] = {}
    for i, batch in enumerate(batches):
        refusal = unstorable.check(batch)
        if refusal is not None:
            results[i] = refusal
    part = [i for i in range(len(batches)) if i not in results]
    await _record_part(engine, batches, part, results, as_rules(rules))
    return [results[i] for i in range(len(batches))]


async def _record_part(
    engine: AsyncEngine,
    batches: Sequence[Batch],
    part: list[int],
    results: dict[int, Recorded | Exception],
    rules: Rules,
) -> None:
    """Record the batches numbered `part` in one transaction, their results into `results`. When the
    database refuses a batch's values, each half of `part` again: a group of n with one such batch
    costs about 2 log2(n) transactions, not n."""
    if not part:
        return
    try:
        async with writing(engine) as connection:
            recorded = await record_in(connection, [batches[i] for i in part], rules)
        results.update(zip(part, recorded, strict=True))
        return
    except (OperationalError, OSError):
        raise
    except DBAPIError as exc:
        said = unstorable.refused(exc)
        if said is not None and len(part) == 1:
            results[part[0]] = unstorable.refusal(batches[part[0]], said)
            return
        if said is not None:
            half = len(part) // 2
            await _record_part(engine, batches, part[:half], results, rules)
            await _record_part(engine, batches, part[half:], results, rules)
            return
        if not isinstance(exc, IntegrityError):
            raise
    except Exception:
        if len(batches) == 1:
            raise
    for i in part:  # a conflict with another writer, or one room's own failure: one room at a time
        try:
            results[i] = await record_events(engine, batches[i], rules=rules)
        except Exception as exc:
            results[i] = exc


Waiting = list[tuple[Batch, "asyncio.Future[Recorded]"]]


def in_lifecycle_order(group: Waiting) -> Waiting:
    """`group` with each stretch of webhook batches between Warden's own events sorted (stably) by
    `order.lifecycle_key`: a room's webhooks of one second in the order a life goes through, whatever
    order concurrent jobs handed them over in; batches of other rooms only change places among them."""
    out: Waiting = []
    stretch: Waiting = []
    for item in group:
        batch = item[0]
        if len(batch) == 1 and order.is_webhook(batch[0][0]):
            stretch.append(item)
            continue
        out += sorted(stretch, key=lambda i: order.lifecycle_key(i[0][0][0]))
        stretch = []
        out.append(item)
    return out + sorted(stretch, key=lambda i: order.lifecycle_key(i[0][0][0]))


class GroupCommit:
    """Gathers the batches of concurrent jobs and records them together (see the module's doc).
    `await record(batch)` returns what `writer.record_events` would, once its group is committed."""

    def __init__(
        self,
        engine: AsyncEngine,
        rules: Rules | Policy,
        *,
        max_group: int = MAX_GROUP,
        room_batches: int = ROOM_BATCHES,
    ) -> None:
        self._engine, self._rules, self._max, self._per_room = (
            engine,
            as_rules(rules),
            max_group,
            room_batches,
        )
        self._waiting: Waiting = []
        self._flusher: asyncio.Task[None] | None = None

    async def record(self, batch: Batch) -> Recorded:
        future: asyncio.Future[Recorded] = asyncio.get_running_loop().create_future()
        self._waiting.append((batch, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        while self._waiting:
            group: Waiting = []
            rest: Waiting = []
            taken: dict[str, int] = {}
            for batch, future in self._waiting:
                first = batch[0][0]
                room = first.room_sid or f"name:{first.room_name}"
                if future.done():  # its job gave up waiting (timed out): nobody wants the answer
                    continue
                if taken.get(room, 0) >= self._per_room or len(group) >= self._max:
                    rest.append((batch, future))  # a room's later batches too: its order holds
                    continue
                taken[room] = taken.get(room, 0) + 1
                group.append((batch, future))
            self._waiting = rest
            group = in_lifecycle_order(group)
            if not group:
                continue
            try:
                results = await record_group(self._engine, [batch for batch, _ in group], rules=self._rules)
            except Exception as exc:  # every caller sees the failure (and its job retries)
                for _, future in group:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), result in zip(group, results, strict=True):
                if future.done():
                    continue
                if isinstance(result, Exception):
                    future.set_exception(result)
                else:
                    future.set_result(result)

"""Which rooms LiveKit has, asked together: the existence checks of concurrent jobs share one `ListRooms`.

Before it creates a dispatch or trusts an empty participant list, Warden asks LiveKit whether the room
is there (livekit-server answers `ListParticipants` for a room it does not have with an empty list, and
creates the rooms `CreateDispatch` names). When a thousand deadlines fall due together, that is a
thousand `ListRooms` calls, each a signed HTTP request. `RoomsListed.has` hands the name to a task that
takes every name waiting and asks about them in one `ListRooms` (it takes many names). A check that
arrives while a call is under way waits for the next one, so that every caller learns whether the room
was there after it asked (as a call of its own would tell). At low load a call carries one name and
costs what it did alone.

The task belongs to the `RoomsListed`, not to the caller that started it: a caller that gives up (its
job timed out or was cancelled) leaves the call running for the others. If the task itself is cancelled
(`aclose`, or the worker's event loop shutting down), every caller still waiting hears a retryable
`UpstreamError` at once: none waits forever on an answer that will not come.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence

from workers.core.errors import UpstreamError

MAX_NAMES = 200  # names in one ListRooms

ListNamed = Callable[[Sequence[str]], Awaitable[set[str]]]  # names asked -> those LiveKit has


class RoomsListed:
    """Existence checks of rooms by name, asked together (see the module's doc)."""

    def __init__(self, list_named: ListNamed, *, max_names: int = MAX_NAMES) -> None:
        self._list_named, self._max = list_named, max_names
        self._waiting: dict[str, list[asyncio.Future[bool]]] = {}
        self._task: asyncio.Task[None] | None = None

    async def has(self, room: str) -> bool:
        """Does LiveKit have `room` now? Raises what the call raised (`UpstreamError`)."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(room, []).append(future)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._ask())
        return await future

    async def aclose(self) -> None:
        """Stop the call under way, if any; its callers and those waiting hear an `UpstreamError`."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _ask(self) -> None:
        taken: dict[str, list[asyncio.Future[bool]]] = {}
        try:
            while self._waiting:
                names = list(self._waiting)[: self._max]
                taken = {name: self._waiting.pop(name) for name in names}
                try:
                    there = await self._list_named(names)
                except Exception as exc:  # every caller hears it (and its job retries)
                    _fail(taken.values(), exc)
                    continue
                for name, futures in taken.items():
                    for future in futures:
                        if not future.done():  # its caller gave up waiting
                            future.set_result(name in there)
        except asyncio.CancelledError:
            # Nobody else would answer these callers: a later `has` starts a task for its own name only.
            stopped = UpstreamError("the ListRooms existence check was stopped", retryable=True)
            waiting, self._waiting = list(self._waiting.values()), {}
            _fail([*taken.values(), *waiting], stopped)
            raise


def _fail(groups: Iterable[list[asyncio.Future[bool]]], exc: BaseException) -> None:
    for futures in groups:
        for future in futures:
            if not future.done():  # its caller gave up waiting
                future.set_exception(exc)

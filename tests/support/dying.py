"""A batch's process dying half-way, for the jobs tier's fault tests of the batch paths (recovery in bulk,
deadline bursts): LiveKit and the queue of a `jobs_world` patched so that the process dies where it
stands, then given back as a new process finds them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class Died(BaseException):
    """The worker's process dying where it stands (nothing after it runs, nothing is cleaned up)."""


@contextmanager
def dies_half_way(world: Any, where: str, dispatches: int = 5) -> Iterator[None]:
    """Inside: the process dies (`Died`) "asking LiveKit" (at its first look at the rooms), or "after
    some dispatches" (right after its `dispatches`-th dispatch from now landed, before recording it);
    once dead it frees no hold. After: LiveKit and the queue as they are, nothing of the dead process's
    memory."""
    livekit, queue = world.livekit, world.queue
    dead, earlier = False, len(livekit.dispatched)
    real_observe, real_redispatch, real_release = livekit.observe_many, livekit.redispatch, queue.release

    async def observe_many(names: list[str], at_once: int) -> list[object]:
        if dead or where == "asking LiveKit":
            raise Died
        return list(await real_observe(names, at_once))

    async def redispatch(room: str, *args: object, **kwargs: object) -> str:
        nonlocal dead
        if dead:
            raise Died
        made: str = await real_redispatch(room, *args, **kwargs)
        if len(livekit.dispatched) - earlier == dispatches:  # it landed: the process dies before recording
            dead = True
            raise Died
        return made

    async def release(job_ids: object) -> None:
        if not dead and where != "asking LiveKit":
            await real_release(job_ids)

    livekit.observe_many, livekit.redispatch, queue.release = observe_many, redispatch, release
    try:
        yield
    finally:
        livekit.observe_many, livekit.redispatch, queue.release = real_observe, real_redispatch, real_release

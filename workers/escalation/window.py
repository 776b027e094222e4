"""The outage window: the rooms that missed their agent's SLA within the last `window` seconds, a
sorted set in Redis shared by every worker, so that `outage_rooms` breaches anywhere are one outage.

Members are `{sid}|{name}`, scored by when the room missed its SLA; each count drops what is older
than the window. A resolved incident forgets its window (`forget`): the breaches it counted belong to
it, and counting them again would open a new incident with the next single breach.

Beside it, the jobs workers took for the agent whose agent never came (`unjoined`), members
`{worker}|{sid}|{dispatch}` (a job told twice is one), so that a worker that took `UNJOINED_JOBS` of
them within the window is named by the incident.
"""

from __future__ import annotations

from redis.asyncio import Redis

from workers.core.incident import UNJOINED_JOBS


class OutageWindow:
    """One agent's window of breaches."""

    def __init__(self, redis: Redis, agent_name: str, window: float) -> None:
        self.redis, self.window = redis, window
        self.key = f"warden:breaches:{agent_name}"
        self.jobs_key = f"warden:unjoined:{agent_name}"

    async def count(self, sid: str, name: str, now: float) -> int:
        """Add the room's breach at `now`; how many rooms are in the window now."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zadd(self.key, {f"{sid}|{name}": now})
            pipe.zremrangebyscore(self.key, "-inf", now - self.window)
            pipe.zcard(self.key)
            pipe.expire(self.key, int(self.window) + 1)
            return int((await pipe.execute())[2])

    async def rooms(self) -> list[tuple[str, str]]:
        """(sid, name) of the rooms in the window."""
        members = await self.redis.zrange(self.key, 0, -1)
        return [(sid, name) for sid, _, name in (m.decode().partition("|") for m in members)]

    async def unjoined(
        self, sid: str, jobs: tuple[tuple[str, str], ...], now: float
    ) -> tuple[tuple[str, int], ...]:
        """Add the room's jobs (dispatch, worker) whose agent never came, at `now`; the workers that took
        `UNJOINED_JOBS` or more within the window, with how many, most first."""
        async with self.redis.pipeline(transaction=True) as pipe:
            if jobs:
                pipe.zadd(self.jobs_key, {f"{worker}|{sid}|{dispatch}": now for dispatch, worker in jobs})
            pipe.zremrangebyscore(self.jobs_key, "-inf", now - self.window)
            pipe.zrange(self.jobs_key, 0, -1)
            pipe.expire(self.jobs_key, int(self.window) + 1)
            members = (await pipe.execute())[-2]
        taken: dict[str, int] = {}
        for member in members:
            worker = member.decode().partition("|")[0]
            taken[worker] = taken.get(worker, 0) + 1
        named = [(worker, n) for worker, n in taken.items() if n >= UNJOINED_JOBS]
        return tuple(sorted(named, key=lambda w: (-w[1], w[0])))

    async def forget(self) -> None:
        await self.redis.delete(self.key, self.jobs_key)

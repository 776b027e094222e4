"""The outage window: the rooms that missed their agent's SLA within the last `window` seconds, a
sorted set in Redis shared by every worker, so that `outage_rooms` breaches anywhere are one outage.

Members are `{sid}|{name}`, scored by when the room missed its SLA; each count drops what is older
than the window. A resolved incident forgets its window (`forget`): the breaches it counted belong to
it, and counting them again would open a new incident with the next single breach.
"""

from __future__ import annotations

from redis.asyncio import Redis


class OutageWindow:
    """One agent's window of breaches."""

    def __init__(self, redis: Redis, agent_name: str, window: float) -> None:
        self.redis, self.window = redis, window
        self.key = f"warden:breaches:{agent_name}"

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

    async def forget(self) -> None:
        await self.redis.delete(self.key)

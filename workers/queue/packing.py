"""Redis commands packed by hiredis (C) instead of redis-py's asyncio client (Python), as redis-py's
own synchronous client does when hiredis is installed (its `HiredisRespSerializer`).

redis-py's asyncio connection packs each argument in Python, re-joining the command's buffer per
argument: 61 µs for the enqueue script's call of 16 webhooks, 10 µs with `hiredis.pack_command`. The
bytes sent are the same (strings in UTF-8, numbers as `repr` writes them; Warden's pools keep
redis-py's default encoding). An argument hiredis does not take (a memoryview, a bool) is packed by
redis-py, which says what is wrong with it.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import ConnectionPool
from redis.asyncio.connection import AbstractConnection

try:
    import hiredis

    HIREDIS = True
except ImportError:  # an install without it: redis-py's packing, as before
    HIREDIS = False


class _HiredisPacking(AbstractConnection):
    def pack_command(self, *args: Any) -> list[bytes]:
        first = args[0]
        if isinstance(first, str):  # a command of two words ("SCRIPT LOAD") is sent as two arguments
            args = (*first.encode().split(), *args[1:])
        elif b" " in first:
            args = (*first.split(), *args[1:])
        try:
            return [hiredis.pack_command(args)]
        except TypeError:
            return super().pack_command(*args)


def packed_by_hiredis(pool: ConnectionPool) -> ConnectionPool:
    """`pool`, whose connections (made from now on) pack their commands with hiredis when installed."""
    cls = pool.connection_class
    if HIREDIS and not issubclass(cls, _HiredisPacking):
        pool.connection_class = type(f"Hiredis{cls.__name__}", (_HiredisPacking, cls), {})
    return pool

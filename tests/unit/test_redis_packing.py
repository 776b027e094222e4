"""`workers.queue.packing`: commands packed by hiredis are the bytes redis-py's asyncio client sends."""

from __future__ import annotations

import pytest
from redis.asyncio import ConnectionPool
from redis.asyncio.connection import Connection
from redis.exceptions import DataError

from workers.queue.packing import packed_by_hiredis

COMMANDS = [
    ("SCRIPT LOAD", "return 1"),
    ("EVALSHA", "a" * 40, 3, "warden:queue", "arq:job:webhook:EV_1", "arq:result:webhook:EV_1"),
    ("ZADD", "warden:queue", 1767225600123, "webhook:EV_é", 0.30000000000000004, 1e16, -7),
    ("SET", "k", b"\x00\x80pickled" * 2000, "PX", 86400000),
]


@pytest.mark.parametrize("command", COMMANDS)
def test_the_same_bytes_as_redis_py(command: tuple[object, ...]) -> None:
    pool = packed_by_hiredis(ConnectionPool.from_url("redis://127.0.0.1:1"))
    ours, theirs = pool.make_connection(), Connection()
    assert ours is not theirs and type(ours).__name__ == "HiredisConnection"
    assert b"".join(ours.pack_command(*command)) == b"".join(theirs.pack_command(*command))


def test_what_hiredis_refuses_redis_py_judges() -> None:
    connection = packed_by_hiredis(ConnectionPool.from_url("redis://127.0.0.1:1")).make_connection()
    with pytest.raises(DataError):
        connection.pack_command("SET", "k", True)
    assert b"".join(connection.pack_command("SET", "k", memoryview(b"v"))).endswith(b"$1\r\nv\r\n")

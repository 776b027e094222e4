"""Which Redis a pytest session uses: a database of its own on the machine's 127.0.0.1:6379, or none.

Only a shard of the whole suite (`tests.support.run`) uses the machine's server, on the database the runner
gave it (`WARDEN_TEST_REDIS_DB`, 9 to 15, one per shard); every other session (a focused run, `make
test-unit`, plain pytest) starts a private redis-server, so that it never flushes a database a run beside
it is using.
"""

from __future__ import annotations

import os

import redis


def shared_redis_url() -> str | None:
    """The machine's server with this shard's database, when this is a shard and the server answers."""
    database = os.environ.get("WARDEN_TEST_REDIS_DB")
    if not database:
        return None
    probe = redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=0.5)
    try:
        probe.ping()
    except redis.ConnectionError:
        return None
    finally:
        probe.close()
    return f"redis://127.0.0.1:6379/{int(database)}"

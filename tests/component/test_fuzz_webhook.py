"""Fuzzing POST /webhook over HTTP: 10,000 malformed, truncated, mis-signed and oversized requests get
only 4xx — never a 5xx — and none of them reaches the queue."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator

import httpx
import pytest
import redis
import uvicorn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devtools.embedded_redis import free_port
from service.app import create_app
from tests.support.helpers import FIXTURES, sign
from tests.support.settings import KEY, SECRET, make_settings
from workers.migrate import upgrade
from workers.store.engine import make_engine

EXAMPLES = 2500  # per test; the four request tests below make 10,000 requests
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
SAMPLES = [p.read_bytes() for p in sorted(FIXTURES.glob("*.json"))]


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory, redis_server: str) -> Iterator[tuple[httpx.Client, str]]:
    """Warden's web app under uvicorn in a thread, for synchronous Hypothesis tests."""
    redis.Redis.from_url(redis_server).flushdb()
    app_settings = make_settings(
        redis_url=redis_server,
        database_url=f"sqlite:///{tmp_path_factory.mktemp('fuzz')}/w.db",
        warden_max_body_bytes=64 * 1024,
    )
    asyncio.run(_migrate(app_settings.database_url))
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(app_settings), host="127.0.0.1", port=port, log_level="error")
    )
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
        while not server.started:  # uvicorn sets it once listening; nothing to await across threads
            threading.Event().wait(0.01)
        yield client, redis_server
    server.should_exit = True
    thread.join(timeout=10)


async def _migrate(url: str) -> None:
    engine = make_engine(url)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()


def queued(redis_url: str) -> int:
    return int(redis.Redis.from_url(redis_url).zcard("warden:queue"))


def post(client: httpx.Client, body: bytes, authorization: str | bytes | None) -> int:
    headers: dict[str, str | bytes] = {"Content-Type": "application/webhook+json"}
    if authorization is not None:
        headers["Authorization"] = authorization
    return client.post("/webhook", content=body, headers=headers).status_code


header_bytes = st.binary(max_size=300).map(
    lambda b: bytes(c for c in b if c >= 0x20 and c != 0x7F).strip(b" \t")
)
tokens = st.one_of(
    st.none(),
    header_bytes,  # any header value HTTP can carry, latin-1 included
    st.builds(lambda b: sign(b, "stranger", SECRET), st.binary(max_size=50)),  # unknown key
    st.builds(lambda b: sign(b, KEY, "x" * 40), st.binary(max_size=50)),  # wrong secret
    st.sampled_from(SAMPLES).map(lambda raw: sign(raw, KEY, SECRET)),  # signed for another body
)


@FUZZ
@given(body=st.one_of(st.binary(max_size=2000), st.sampled_from(SAMPLES)), token=tokens)
def test_unverifiable_requests_are_401(
    web: tuple[httpx.Client, str], body: bytes, token: str | bytes | None
) -> None:
    client, redis_url = web
    if token is not None and body in SAMPLES and token == sign(body, KEY, SECRET):
        return  # a correct signature is not what this test is about
    assert post(client, body, token) == 401
    assert queued(redis_url) == 0


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)


@FUZZ
@given(value=json_values)
def test_signed_json_that_is_no_webhook_event_is_400(web: tuple[httpx.Client, str], value: object) -> None:
    client, redis_url = web
    if isinstance(value, dict) and isinstance(value.get("event"), str) and value["event"]:
        return  # an object with an event name is a (minimal) WebhookEvent
    body = json.dumps(value).encode()
    assert post(client, body, sign(body, KEY, SECRET)) == 400
    assert queued(redis_url) == 0


@FUZZ
@given(sample=st.sampled_from(SAMPLES), data=st.data())
def test_signed_truncated_or_corrupted_bodies_are_400(
    web: tuple[httpx.Client, str], sample: bytes, data: st.DataObject
) -> None:
    client, redis_url = web
    cut = data.draw(st.integers(0, len(sample) - 1))
    junk = data.draw(st.binary(max_size=8))
    body = sample[:cut] + junk
    try:
        parsed = json.loads(body)
        if isinstance(parsed, dict) and isinstance(parsed.get("event"), str) and parsed["event"]:
            return  # the junk happened to complete a valid event
    except ValueError:
        pass
    assert post(client, body, sign(body, KEY, SECRET)) == 400
    assert queued(redis_url) == 0


@FUZZ
@given(size=st.integers(64 * 1024 + 1, 200 * 1024), signed=st.booleans())
def test_oversized_bodies_are_413(web: tuple[httpx.Client, str], size: int, signed: bool) -> None:
    client, redis_url = web
    body = b"{" + b" " * (size - 2) + b"}"
    assert post(client, body, sign(body, KEY, SECRET) if signed else None) == 413
    assert queued(redis_url) == 0


paths = st.text(
    st.characters(min_codepoint=33, max_codepoint=126, exclude_characters="/?#%"), min_size=1, max_size=40
)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    path=st.one_of(
        st.builds(lambda n: f"/api/rooms/{n}", paths),
        st.builds(lambda n: f"/api/incidents/{n}", paths),
        st.just("/api/rooms"),
        st.just("/api/incidents"),
    ),
    params=st.dictionaries(st.sampled_from(["limit", "offset", "x"]), st.text(max_size=12), max_size=3),
)
def test_the_api_answers_odd_requests_with_2xx_or_4xx(
    web: tuple[httpx.Client, str], path: str, params: dict[str, str]
) -> None:
    client, _ = web
    status = client.get(path, params=params).status_code
    assert status < 500

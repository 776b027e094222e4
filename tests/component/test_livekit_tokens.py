"""LiveKit's tokens are signed once and reused: what the stand-in LiveKit receives, over HTTP, from the
real livekit-api client (`workers.adapters.tokens`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import jwt
import pytest
from livekit.api import TokenVerifier, VideoGrants

from devtools.simulator.livekit import FakeLiveKit
from devtools.simulator.serving import serve
from tests.support.settings import KEY, SECRET
from workers.adapters.cloud import CloudAgents
from workers.adapters.livekit import LiveKitRooms
from workers.adapters.tokens import Tokens

AGENT = "notetaker"


def lifetime(token: str) -> int:
    """Seconds from the token's `nbf` to its `exp` (livekit-api's own are six hours)."""
    claims = jwt.decode(token, options={"verify_signature": False})
    return int(claims["exp"]) - int(claims["nbf"])


class Recorder:
    """The stand-in LiveKit, noting the Authorization header of every request it gets."""

    def __init__(self) -> None:
        self.fake = FakeLiveKit(KEY, SECRET)
        self.headers: list[tuple[str, str]] = []  # (path, authorization)
        self._app = self.fake.app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            self.headers.append((scope["path"], headers.get(b"authorization", b"").decode()))
        await self._app(scope, receive, send)

    def tokens(self, method: str) -> list[str]:
        return [h.removeprefix("Bearer ") for path, h in self.headers if path.endswith("/" + method)]


@pytest.fixture
async def livekit() -> AsyncIterator[tuple[Recorder, str]]:
    recorder = Recorder()
    async with serve(recorder) as url:
        yield recorder, url


async def test_one_token_per_room_reused_across_calls(livekit: tuple[Recorder, str]) -> None:
    recorder, url = livekit
    rooms = LiveKitRooms(url, KEY, SECRET, timeout=2.0)
    try:
        for room in ("alpha", "beta"):
            recorder.fake.join(room, "alice")
            await rooms.observe(room)
            await rooms.redispatch(room, AGENT, "", ())
            await rooms.observe(room)
        await rooms.list_rooms()
    finally:
        await rooms.aclose()
    sent = [h.removeprefix("Bearer ") for path, h in recorder.headers if "ListRooms" not in path]
    assert (
        len(sent) == 14
    )  # per room: (ListParticipants + ListDispatch) x 3 (the re-dispatch looks too), Create
    assert len(set(sent)) == 2  # one token a room
    assert rooms.tokens.signed == 3  # and one for ListRooms: signed once each, not once a call
    assert {lifetime(t) for t in sent} == {3600}  # Warden's, not livekit-api's fresh six-hour ones
    verifier = TokenVerifier(KEY, SECRET)
    by_room = {verifier.verify(t).video.room: t for t in set(sent)}
    assert sorted(by_room) == ["alpha", "beta"]
    for room, token in by_room.items():
        claims = verifier.verify(token)
        assert claims.video == VideoGrants(room_admin=True, room=room)  # what livekit-api signs itself
    assert [room for _, room in recorder.fake.calls if room].count("alpha") == 7  # all accepted
    assert len(recorder.fake.live_dispatches("beta", AGENT)) == 1
    (listed,) = set(recorder.tokens("ListRooms"))  # the existence checks and the listing: one token
    assert verifier.verify(listed).video == VideoGrants(room_list=True)


async def test_cloud_agent_token_reused(livekit: tuple[Recorder, str]) -> None:
    recorder, url = livekit
    recorder.fake.cloud_agents = {"CA_1": AGENT}
    cloud = CloudAgents(url, KEY, SECRET)
    try:
        await cloud.restart(AGENT)
        await cloud.restart(AGENT)
    finally:
        await cloud.aclose()
    sent = recorder.tokens("ListAgents") + recorder.tokens("RestartAgent")
    assert len(sent) == 4 and len(set(sent)) == 1
    assert cloud.tokens.signed == 1 and lifetime(sent[0]) == 3600
    claims = TokenVerifier(KEY, SECRET).verify(sent[0])
    assert claims.agent is not None and claims.agent.admin


def test_token_renewed_before_it_expires_and_least_used_rooms_forgotten() -> None:
    now = [1000.0]
    tokens = Tokens(
        KEY,
        SECRET,
        ttl=timedelta(minutes=10),
        reuse=timedelta(minutes=8),
        max_entries=2,
        clock=lambda: now[0],
    )
    alpha = VideoGrants(room_admin=True, room="alpha")
    first = tokens.auth_header(alpha)
    now[0] += 8 * 60 - 1
    assert tokens.auth_header(alpha) == first
    now[0] += 1
    tokens.auth_header(alpha)  # signed anew (within the same second, to the same bytes)
    assert tokens.signed == 2
    tokens.auth_header(VideoGrants(room_admin=True, room="beta"))
    tokens.auth_header(VideoGrants(room_admin=True, room="gamma"))  # alpha, least recently used, goes
    tokens.auth_header(alpha)
    assert tokens.signed == 5
    claims = TokenVerifier(KEY, SECRET).verify(first["authorization"].removeprefix("Bearer "))
    assert claims.video == alpha


def test_reuse_longer_than_lifetime_refused() -> None:
    with pytest.raises(ValueError, match="longer than it lives"):
        Tokens(KEY, SECRET, ttl=timedelta(minutes=1), reuse=timedelta(minutes=2))

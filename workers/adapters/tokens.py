"""Access tokens for LiveKit's APIs, each signed once and reused for most of its lifetime.

livekit-api signs a fresh JWT for every call (`Service._auth_header`: an `AccessToken`, its claims
turned into a dict, PyJWT's HS256): about a tenth of the worker's CPU when a thousand rooms are
re-dispatched at once, four calls a room. The grants of a call depend only on the room it is about, so
`Tokens` keeps the header of each (grants → header) for `REUSE` of the token's `TTL`, the least recently
used first out beyond `MAX_ENTRIES`. The tokens are the same ones livekit-api would sign (same claims,
a longer-lived `exp` than a single call needs but shorter than livekit-api's default six hours), kept
in memory only, never logged.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from datetime import timedelta

from livekit.api import AccessToken, VideoGrants
from livekit.api.access_token import AgentGrants, SIPGrants

TTL = timedelta(hours=1)  # the tokens' lifetime (`exp`)
REUSE = timedelta(minutes=50)  # how long one is reused: ten minutes spare for clock skew and slow calls
MAX_ENTRIES = 4096  # distinct grants kept (one per room recently asked about): a few hundred bytes each
AUTHORIZATION = "authorization"  # the header livekit-api's services send


class Tokens:
    """Authorization headers signed with `api_key` / `api_secret`, cached by grants (see the module)."""

    def __init__(
        self,
        api_key: str,
        api_secret: str,
        *,
        ttl: timedelta = TTL,
        reuse: timedelta = REUSE,
        max_entries: int = MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if reuse > ttl:
            raise ValueError("a token cannot be reused for longer than it lives")
        self._key, self._secret = api_key, api_secret
        self._ttl, self._reuse, self._max = ttl, reuse.total_seconds(), max_entries
        self._clock = clock
        self._headers: OrderedDict[tuple[str, ...], tuple[float, dict[str, str]]] = OrderedDict()
        self.signed = 0  # tokens signed so far (what the cache saves is calls minus this)

    def _header(self, key: tuple[str, ...], grant: Callable[[AccessToken], object]) -> dict[str, str]:
        now = self._clock()
        cached = self._headers.get(key)
        if cached is not None and now < cached[0]:
            self._headers.move_to_end(key)
            return dict(cached[1])
        token = AccessToken(self._key, self._secret).with_ttl(self._ttl)
        grant(token)
        header = {AUTHORIZATION: f"Bearer {token.to_jwt()}"}
        self.signed += 1
        self._headers[key] = (now + self._reuse, header)
        self._headers.move_to_end(key)
        while len(self._headers) > self._max:
            self._headers.popitem(last=False)
        return dict(header)

    def auth_header(self, grants: VideoGrants | None, sip: SIPGrants | None = None) -> dict[str, str]:
        """What livekit-api's `Service._auth_header(grants, sip)` returns, from the cache when it can."""

        def grant(token: AccessToken) -> None:
            if grants:
                token.with_grants(grants)
            if sip is not None:
                token.with_sip_grants(sip)

        return self._header(("video", repr(grants), repr(sip)), grant)

    def agent_admin(self) -> dict[str, str]:
        """The header of LiveKit Cloud's agent API (`AgentGrants(admin=True)`)."""
        return self._header(("agent-admin",), lambda token: token.with_agent_grants(AgentGrants(admin=True)))

    def install(self, services: Iterable[object]) -> None:
        """Make livekit-api's services (`LiveKitAPI.room`, `.agent_dispatch`, ...) take their headers from
        here: each signs in `Service._auth_header` (livekit-api 1.x), which this replaces on the instance
        (tests/component/test_livekit_tokens.py checks that the method is still there and still called)."""
        for service in services:
            if not callable(getattr(service, "_auth_header", None)):
                raise TypeError(f"{type(service).__name__} has no _auth_header: livekit-api changed")
            service._auth_header = self.auth_header  # type: ignore[attr-defined]

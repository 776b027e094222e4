"""Who may read the operator API and dashboard, and who may change something (README: "Roles").

A token of `WARDEN_TOKENS` (named, a viewer's or an operator's) or `WARDEN_ADMIN_TOKEN` (the operator
named `admin`), as a bearer token or as the password of HTTP Basic auth (so that a browser can ask for
it): a viewer reads the API and the dashboard, an operator also changes something (`operator_only`:
every POST and DELETE but an agent's heartbeat, which has its own tokens). What changes something is
refused to another site's page whatever its credentials (`service.api.cross_site`). With no token set
at all, loopback only, as the operator named `loopback`.

Loopback means a client on this machine talking to Warden directly. A request that came through a
proxy carries the proxy's address (often loopback itself: nginx on the same host), so any forwarding
header on a tokenless request refuses it, whatever it says: `X-Forwarded-For: localhost` was served
once, and `X-Real-IP` / `Forwarded` were not read at all, so behind a same-host proxy setting only
those every client counted as loopback. Behind a proxy, set a token. And the `Host` the request was
sent to must be a loopback name too: a page of any site whose name its owner points at 127.0.0.1 (DNS
rebinding) is same-origin with Warden to the browser, which then connects from loopback itself."""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import wraps
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from service.api.cross_site import cross_site_refusal
from workers.settings_tokens import AccessToken, digest
from workers.settings_tokens import Role as Role  # the roles, as callers of this module name them

Endpoint = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True)
class Caller:
    """Who made a request, as operator actions record it (`by`): a name and a role, never the token.
    A `WARDEN_TOKENS` entry's name and role; `WARDEN_ADMIN_TOKEN` is the operator named `admin`; with no
    token set, a direct loopback client is the operator named `loopback`."""

    name: str
    role: Role


# Headers a proxy or CDN adds to say whom it forwards for (RFC 7239's `Forwarded`, the de facto
# X-Forwarded-*, nginx's X-Real-IP, the CDNs' own) or that it forwarded at all (`Via`, RFC 9110).
FORWARDING_HEADERS = (
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-forwarded-port",
    "x-forwarded-server",
    "x-forwarded-prefix",
    "x-original-forwarded-for",
    "x-real-ip",
    "x-client-ip",
    "x-cluster-client-ip",
    "true-client-ip",
    "cf-connecting-ip",
    "fastly-client-ip",
    "via",
)


NO_TOKEN = "no token is set (WARDEN_TOKENS, WARDEN_ADMIN_TOKEN)"


def is_loopback(host: str) -> bool:
    """An address of this machine's loopback interface (a name such as `localhost` is not an address:
    only a forwarding header could have put it there)."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def tokenless_refusal(request: Request, what: str = "the API") -> str | None:
    """Why a request may not read `what` without a token (None when it may): it must come straight
    from loopback, through no proxy."""
    forwarded = [name for name in FORWARDING_HEADERS if name in request.headers]
    if forwarded:
        return (
            f"{NO_TOKEN}, so {what} answers direct loopback clients only, and this request came "
            f"through a proxy ({', '.join(forwarded)}): set WARDEN_TOKENS or WARDEN_ADMIN_TOKEN"
        )
    if not loopback_name(request.headers.get("host", "")):
        return (
            f"{NO_TOKEN}, so {what} answers requests to a loopback name only (127.0.0.1, [::1], "
            "localhost): a page whose site name was made to point here (DNS rebinding) would otherwise "
            "read and act as this machine: set WARDEN_TOKENS or WARDEN_ADMIN_TOKEN"
        )
    # The socket's peer: uvicorn replaces it with X-Forwarded-For's only when that header is present.
    client = request.client.host if request.client else ""
    if is_loopback(client):
        return None
    return f"{NO_TOKEN}, so {what} answers loopback clients only"


def loopback_name(host: str) -> bool:
    """Whether a `Host` header names this machine's loopback (an address, or `localhost`, which
    browsers resolve to loopback themselves); a request with none (HTTP/1.0) is no browser's."""
    if not host:
        return True
    try:
        name = urlsplit(f"//{host}").hostname or ""
    except ValueError:
        return False
    return is_loopback(name) or name == "localhost" or name.endswith(".localhost")


def authenticate(request: Request) -> Response | None:
    """None when the request may proceed (and `request.state.caller` says who made it), else the 401/403
    response to send. The token supplied is compared with every token configured, each in constant
    time, so that the time taken says nothing of which one (nor how much of one) it matched."""
    tokens: tuple[AccessToken, ...] = request.state.settings.access_tokens
    if tokens:
        supplied = digest(_supplied_token(request.headers.get("authorization", "")))
        found = None
        for token in tokens:
            if hmac.compare_digest(supplied, token.digest):
                found = token
        if found is not None:
            request.state.caller = Caller(found.name, found.role)
            return None
        return JSONResponse(
            {"error": "missing or wrong token (a bearer token, or the Basic auth password)"},
            status_code=401,
            headers={"WWW-Authenticate": 'Basic realm="Warden", charset="UTF-8"'},
        )
    reason = tokenless_refusal(request)
    if reason is None:
        request.state.caller = Caller("loopback", "operator")
        return None
    return JSONResponse({"error": reason}, status_code=403)


def _supplied_token(header: str) -> bytes:
    """The token in `Authorization: Bearer <token>` or `Basic base64(<any user>:<token>)`."""
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer":
        return value.strip().encode()
    if scheme.lower() == "basic":
        try:
            return base64.b64decode(value.strip(), validate=True).partition(b":")[2]
        except (binascii.Error, ValueError):
            return b""
    return b""


def admin_only(endpoint: Endpoint) -> Endpoint:
    """Decorate an endpoint that reads: it runs for any authorised caller, viewer or operator."""

    @wraps(endpoint)
    async def guarded(request: Request) -> Response:
        refusal = authenticate(request)
        return refusal if refusal is not None else await endpoint(request)

    return guarded


def operator_only(endpoint: Endpoint) -> Endpoint:
    """Decorate an endpoint that changes something (every operator POST and DELETE): it runs only for a
    caller whose role is `operator`, and never for another site's page (403 first, before the
    credentials are even read: a browser would answer a 401 by asking its user for them); a viewer
    gets 403."""

    @wraps(endpoint)
    async def guarded(request: Request) -> Response:
        cross_site = cross_site_refusal(request)
        if cross_site is not None:
            return JSONResponse({"error": cross_site}, status_code=403)
        refusal = authenticate(request)
        if refusal is not None:
            return refusal
        who = caller(request)
        if who.role != "operator":
            return JSONResponse(
                {"error": f"{who.name} is a viewer: this needs an operator's token (WARDEN_TOKENS)"},
                status_code=403,
            )
        return await endpoint(request)

    return guarded


def caller(request: Request) -> Caller:
    """Who made this (authorised) request."""
    found = getattr(request.state, "caller", None)
    if not isinstance(found, Caller):
        raise RuntimeError("caller() read before the request was authorised")
    return found


def caller_name(request: Request) -> str:
    """The name an operator action records as `by`."""
    return caller(request).name

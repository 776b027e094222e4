"""Who may read the operator API and dashboard: `WARDEN_ADMIN_TOKEN` (as a bearer token, or as the
password of HTTP Basic auth so that a browser can ask for it), or, when none is set, loopback only.

Loopback means a client on this machine talking to Warden directly. A request that came through a
proxy carries the proxy's address (often loopback itself: nginx on the same host), so any forwarding
header on a tokenless request refuses it, whatever it says: `X-Forwarded-For: localhost` was served
once, and `X-Real-IP` / `Forwarded` were not read at all, so behind a same-host proxy setting only
those every client counted as loopback. Behind a proxy, set `WARDEN_ADMIN_TOKEN`."""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import wraps
from typing import Literal

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

Endpoint = Callable[[Request], Awaitable[Response]]
Role = Literal["viewer", "operator"]


@dataclass(frozen=True)
class Caller:
    """Who made a request, as operator actions record it (`by`): a name and a role, never the token.
    `WARDEN_ADMIN_TOKEN` is the operator named `admin`; with no token set, a direct loopback client is the
    operator named `loopback`."""

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
            f"WARDEN_ADMIN_TOKEN is not set, so {what} answers direct loopback clients only, and this "
            f"request came through a proxy ({', '.join(forwarded)}): set WARDEN_ADMIN_TOKEN"
        )
    # The socket's peer: uvicorn replaces it with X-Forwarded-For's only when that header is present.
    client = request.client.host if request.client else ""
    if is_loopback(client):
        return None
    return f"WARDEN_ADMIN_TOKEN is not set, so {what} answers loopback clients only"


def check_admin(request: Request, admin_token: str) -> Response | None:
    """None when the request may proceed (and `request.state.caller` says who made it), else the 401/403
    response to send."""
    if admin_token:
        if hmac.compare_digest(
            _supplied_token(request.headers.get("authorization", "")), admin_token.encode()
        ):
            request.state.caller = Caller("admin", "operator")
            return None
        return JSONResponse(
            {"error": "missing or wrong admin token (a bearer token, or the Basic auth password)"},
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
    """Decorate an endpoint so that it runs only for an authorised caller."""

    @wraps(endpoint)
    async def guarded(request: Request) -> Response:
        refusal = check_admin(request, request.state.settings.admin_token)
        return refusal if refusal is not None else await endpoint(request)

    return guarded


def operator_only(endpoint: Endpoint) -> Endpoint:
    """Decorate an endpoint that changes something (every operator POST and DELETE): it runs only for a
    caller whose role is `operator`; any other authorised caller gets 403."""

    @wraps(endpoint)
    async def guarded(request: Request) -> Response:
        refusal = check_admin(request, request.state.settings.admin_token)
        if refusal is not None:
            return refusal
        if caller(request).role != "operator":
            return JSONResponse({"error": "this needs an operator's token"}, status_code=403)
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

"""Who may read the operator API: a bearer `WARDEN_ADMIN_TOKEN`, or, when none is set, loopback only."""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Awaitable, Callable
from functools import wraps

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

Endpoint = Callable[[Request], Awaitable[Response]]


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def check_admin(request: Request, admin_token: str) -> Response | None:
    """None when the request may proceed, else the 401/403 response to send."""
    if admin_token:
        supplied = request.headers.get("authorization", "")
        if supplied.startswith("Bearer ") and hmac.compare_digest(
            supplied.removeprefix("Bearer ").encode(), admin_token.encode()
        ):
            return None
        return JSONResponse(
            {"error": "missing or wrong bearer token"},
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )
    client = request.client.host if request.client else ""
    if is_loopback(client):
        return None
    return JSONResponse(
        {"error": "WARDEN_ADMIN_TOKEN is not set, so the API answers loopback clients only"},
        status_code=403,
    )


def admin_only(endpoint: Endpoint) -> Endpoint:
    """Decorate an endpoint so that it runs only for an authorised caller."""

    @wraps(endpoint)
    async def guarded(request: Request) -> Response:
        refusal = check_admin(request, request.state.settings.admin_token)
        return refusal if refusal is not None else await endpoint(request)

    return guarded

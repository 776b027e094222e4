"""Who may read the operator API and dashboard: `WARDEN_ADMIN_TOKEN` (as a bearer token, or as the
password of HTTP Basic auth so that a browser can ask for it), or, when none is set, loopback only."""

from __future__ import annotations

import base64
import binascii
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
        if hmac.compare_digest(
            _supplied_token(request.headers.get("authorization", "")), admin_token.encode()
        ):
            return None
        return JSONResponse(
            {"error": "missing or wrong admin token (a bearer token, or the Basic auth password)"},
            status_code=401,
            headers={"WWW-Authenticate": 'Basic realm="Warden", charset="UTF-8"'},
        )
    client = request.client.host if request.client else ""
    if is_loopback(client):
        return None
    return JSONResponse(
        {"error": "WARDEN_ADMIN_TOKEN is not set, so the API answers loopback clients only"},
        status_code=403,
    )


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

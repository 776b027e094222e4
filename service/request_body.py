"""A request's body read up to a limit, for the routes that take one (the operator API and the
dashboard's forms; the webhook, a plain ASGI app, reads its own the same way in `service.intake.webhook`):
refused as soon as it is known to be over, by its `Content-Length` or by what has arrived, so a large
body is never held whole."""

from __future__ import annotations

from starlette.requests import Request


class BodyTooLarge(Exception):
    """The request body is over the limit (answered 413, or 400 where the route says so)."""


async def read_body(request: Request, limit: int) -> bytes:
    """Read the raw body, refusing early when it is over `limit` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)

"""The baseline: a bare Starlette endpoint that reads the body and answers JSON, nothing else."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def accept(request: Request) -> JSONResponse:
    await request.body()
    return JSONResponse({"status": "queued"})


app = Starlette(routes=[Route("/webhook", accept, methods=["POST"])])

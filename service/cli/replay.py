"""`warden replay FILE`: re-send recorded webhook bodies (one JSON body per line) to Warden's
`/webhook`, each signed with the configured LiveKit key as livekit-server signs it.

Warden stores events by id, so bodies it has already taken are accepted again and change nothing;
replay into a fresh Warden (another `DATABASE_URL`) to rebuild an incident's rooms from a recording."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import httpx
from rich.console import Console

from service.cli.signing import sign
from workers.core.errors import SettingsError
from workers.settings import load_settings


def _lines(path: str) -> list[str]:
    text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    return [line for line in text.splitlines() if line.strip()]


async def run(url: str, path: str) -> int:
    out = Console(highlight=False, stderr=True, soft_wrap=True)
    try:
        settings = load_settings()
        key, secret = settings.primary_key()
        lines = _lines(path)
    except (SettingsError, OSError) as exc:
        out.print(f"[red]warden replay: {exc}[/red]")
        return 1
    sent = refused = 0
    async with httpx.AsyncClient(timeout=10.0) as client:
        for number, line in enumerate(lines, 1):
            try:
                json.loads(line)
            except ValueError:
                out.print(f"line {number}: not JSON, skipped")
                refused += 1
                continue
            raw = line.encode()
            headers = {"Authorization": sign(raw, key, secret), "Content-Type": "application/webhook+json"}
            try:
                answer = await client.post(f"{url.rstrip('/')}/webhook", content=raw, headers=headers)
            except httpx.HTTPError as exc:
                out.print(f"[red]Warden unreachable at {url} ({type(exc).__name__}); {sent} sent[/red]")
                return 1
            if answer.status_code == 200:
                sent += 1
            else:
                refused += 1
                out.print(f"line {number}: HTTP {answer.status_code} {answer.text[:200]}")
    out.print(f"{sent} webhook(s) accepted, {refused} refused or skipped, of {len(lines)}")
    return 0 if not refused else 1

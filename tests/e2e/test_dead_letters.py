"""Dead letters from the Procfile's processes: a webhook job the real worker cannot fold (an event kind
this Warden does not know, as a newer web process might queue during a rolling deploy) is retried, then
kept; an operator sees it in Chromium (the rooms page's banner, then `/dead-letters`), the API,
`/metrics` and `warden dead-letters`, while other rooms go on; `warden retry` runs it again in the
worker, and it comes back as the same dead letter while its cause is not fixed."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from arq.connections import ArqRedis
from prometheus_client.parser import text_string_to_metric_families

from tests.support.browser import chromium, need_chromium
from tests.support.helpers import body, sign
from tests.support.processes import ROOT, Warden, run_warden
from tests.support.settings import KEY, SECRET
from tests.support.waiting import wait_until
from workers.queue.enqueue import Enqueuer
from workers.queue.jobs import queue_webhook

QUEUE = "warden:queue"


@pytest.fixture
def warden(tmp_path: Path, redis_url: str, database_url: str) -> Iterator[Warden]:
    need_chromium()
    with run_warden(tmp_path, REDIS_URL=redis_url, DATABASE_URL=database_url) as w:
        yield w


def cli(warden: Warden, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "service.cli", "--url", warden.url, *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def gauge(text: str, name: str) -> float:
    (family,) = [f for f in text_string_to_metric_families(text) if f.name == name]
    return float(family.samples[0].value)


async def test_a_job_the_worker_cannot_run_is_kept_shown_and_re_run(warden: Warden, redis_url: str) -> None:
    now = int(time.time())
    queue = ArqRedis.from_url(redis_url)
    try:
        unknown = {
            "id": "EV_broken",
            "kind": "from_a_newer_warden",
            "name": "room_started",
            "created_at": now,
            "room_sid": "RM_broken",
            "room_name": "broken-room",
        }
        assert await queue_webhook(Enqueuer(queue, QUEUE), "EV_broken", unknown, time.time())
    finally:
        await queue.aclose()
    async with httpx.AsyncClient(base_url=warden.url) as api:
        raw = body("room_started", id="EV_fine", created_at=now, room="fine-room", sid="RM_fine")
        sent = await api.post("/webhook", content=raw, headers={"Authorization": sign(raw, KEY, SECRET)})
        assert sent.status_code == 200, sent.text

        async def letters() -> list[dict[str, Any]]:
            return list((await api.get("/api/dead-letters")).json()["dead_letters"])

        async def kept(attempts: int) -> bool:
            return [(d["id"], d["attempts"], d["retried_at"]) for d in await letters()] == [
                ("webhook:EV_broken", attempts, None)
            ]

        await wait_until(lambda: kept(3), "EV_broken kept as a dead letter after 3 tries")
        (letter,) = await letters()
        assert letter["room"] == {"sid": "RM_broken", "name": "broken-room"}
        # the reason names the field it could not read (never the value: it may be a person's)
        assert letter["error"].startswith("UnreadableRecord: Event.kind"), letter["error"]
        assert (await api.get("/api/rooms/fine-room")).status_code == 200, "other rooms go on"
        assert gauge((await api.get("/metrics")).text, "warden_dead_letters") == 1

        async with chromium() as browser:
            page = await browser.new_page(viewport={"width": 1280, "height": 860})
            await page.goto(f"{warden.url}/")
            banner = await page.inner_text("#dead-letters")
            assert banner.startswith("1 dead letter:"), banner
            await page.click("#dead-letters a")
            await page.wait_for_url(f"{warden.url}/dead-letters")
            row = await page.inner_text('tr[data-dead-letter="webhook:EV_broken"]')
            assert "apply_webhook" in row and "broken-room" in row and "UnreadableRecord" in row, row
            assert "1 not re-run" in await page.inner_text("h1")

        listed = cli(warden, "dead-letters")
        assert "EV_broken" in listed and "broken-room" in listed and "1 not re-run" in listed
        assert "retry:webhook:EV_broken:1" in cli(warden, "retry", "webhook:EV_broken")
        await wait_until(lambda: kept(6), "the re-run, still unable to run, kept again")
    assert "kept as a dead letter after 3 tries" in warden.log_text()

"""Dead letters from the Procfile's processes: a webhook job the real worker cannot fold (an event kind
this Warden does not know, as a newer web process might queue during a rolling deploy) is retried, then
kept; an operator sees it in Chromium (the rooms page's banner, then `/dead-letters`), the API,
`/metrics` and `warden dead-letters`, while other rooms go on; `warden retry` runs it again in the
worker, and it comes back as the same dead letter while its cause is not fixed. With named roles
(issue 28): a viewer reads it all (signed in as such in Chromium, with no Re-run button) and may not
re-run it; another site's POST is refused even with an operator's Basic credentials; an operator's
Re-run button, clicked in Chromium, re-runs it under the operator's name."""

from __future__ import annotations

import base64
import os
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
VIEWER, OPERATOR = "e2e-view-4Tq", "e2e-oper-8Wz"


@pytest.fixture
def warden(tmp_path: Path, redis_url: str, database_url: str) -> Iterator[Warden]:
    need_chromium()
    with run_warden(
        tmp_path,
        REDIS_URL=redis_url,
        DATABASE_URL=database_url,
        WARDEN_TOKENS=f"vera:viewer:{VIEWER},otto:operator:{OPERATOR}",
    ) as w:
        yield w


def cli(warden: Warden, *args: str, token: str = VIEWER, status: int = 0) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "service.cli", "--url", warden.url, *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        env={**os.environ, "WARDEN_TOKEN": token},
    )
    assert done.returncode == status, done.stdout + done.stderr
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
    viewing = {"Authorization": f"Bearer {VIEWER}"}
    async with httpx.AsyncClient(base_url=warden.url, headers=viewing) as api:
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

        retry = "/api/dead-letters/webhook:EV_broken/retry"
        async with chromium() as browser:
            page = await browser.new_page(
                viewport={"width": 1280, "height": 860},
                http_credentials={"username": "vera", "password": VIEWER},
            )
            await page.goto(f"{warden.url}/")
            assert await page.inner_text("#signed-in") == "signed in as vera (viewer)"
            banner = await page.inner_text("#dead-letters")
            assert banner.startswith("1 dead letter:"), banner
            await page.click("#dead-letters a")
            await page.wait_for_url(f"{warden.url}/dead-letters")
            row = await page.inner_text('tr[data-dead-letter="webhook:EV_broken"]')
            assert "apply_webhook" in row and "broken-room" in row and "UnreadableRecord" in row, row
            assert "1 not re-run" in await page.inner_text("h1")
            assert await page.locator("button[data-post]").count() == 0, "a viewer sees no operator button"

            listed = cli(warden, "dead-letters")
            assert "EV_broken" in listed and "broken-room" in listed and "1 not re-run" in listed
            refused = await api.post(retry)
            assert (refused.status_code, refused.json()["error"]) == (
                403,
                "vera is a viewer: this needs an operator's token (WARDEN_TOKENS)",
            )
            assert "vera is a viewer" in cli(warden, "retry", "webhook:EV_broken", status=1)
            basic = base64.b64encode(f"otto:{OPERATOR}".encode()).decode()
            for elsewhere in ({"Origin": "http://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
                forged = await api.post(retry, headers={"Authorization": f"Basic {basic}", **elsewhere})
                assert forged.status_code == 403 and "another site" in forged.json()["error"], forged.text
            assert await kept(3), "neither the viewer's nor another site's POST re-ran it"

            operator = await browser.new_page(http_credentials={"username": "otto", "password": OPERATOR})
            await operator.goto(f"{warden.url}/dead-letters")
            assert await operator.inner_text("#signed-in") == "signed in as otto (operator)"
            await operator.click('tr[data-dead-letter="webhook:EV_broken"] button[data-post]')
            await operator.wait_for_function("document.getElementById('action-result').textContent")
            assert await operator.inner_text("#action-result") == "re-queued webhook:EV_broken by otto"
        await wait_until(lambda: kept(6), "the re-run, still unable to run, kept again")
    log = warden.log_text()
    assert "kept as a dead letter after 3 tries" in log
    assert "dead letter webhook:EV_broken re-queued as retry:webhook:EV_broken:1 by otto" in log
    assert VIEWER not in log and OPERATOR not in log

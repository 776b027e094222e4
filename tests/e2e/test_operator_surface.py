"""The operator's view of a real run: the simulator plays LiveKit (its Twirp API and signed webhooks)
against Warden's Procfile processes with never-joining, leaving and stalling agents and an outage.
While it runs, headless Chromium loads the dashboard, as a person would, and saves the screenshots the
README shows (in var/screenshots; `make screenshots` refreshes the README's); afterwards the simulator's
summary, both metrics endpoints, the CLI and the pages are checked against each other."""

from __future__ import annotations

import asyncio
import random
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from devtools.embedded_redis import free_port
from devtools.simulator.livekit import FakeLiveKit
from devtools.simulator.serving import serve
from devtools.simulator.world import Report, Simulation, parse_failures
from tests.support.browser import SCREENSHOTS, chromium, need_chromium
from tests.support.processes import ROOT, Warden, run_warden
from tests.support.settings import KEY, SECRET
from tests.support.waiting import read_until, wait_until

AGENT = "notetaker"
ROOMS = 24
FAILURES = "never-joins:0.2,leaves:0.15,stalls:0.15,outage:4+5"
SHOTS = ("rooms.png", "room.png", "incidents.png")


@dataclass
class Seen:
    """What the browser showed, page by page (visible text), and screenshots saved."""

    text: dict[str, str] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)


# Every room is polled this often during the simulation: twice as often changes the load it was tuned for.
POLL = 0.2


@dataclass
class Run:
    warden: Warden
    report: Report
    fake: FakeLiveKit
    seen: Seen
    worker_metrics_url: str


async def look(warden: Warden, recovered: str, seen: Seen) -> None:
    """Mid-run: load each page in Chromium, save its screenshot (in var/screenshots: `make screenshots`
    copies them into docs/), note what a person sees."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for shot in SHOTS:
        (SCREENSHOTS / shot).unlink(missing_ok=True)  # each run's own, not a previous run's
    async with chromium() as browser:
        page = await browser.new_page(viewport={"width": 1280, "height": 860})
        await page.goto(f"{warden.url}/")
        await page.wait_for_selector("table.rooms tbody tr")
        seen.text["rooms"] = await page.inner_text("main")
        seen.counts["bars"] = await page.locator("svg.histogram g.bar").count()
        await page.screenshot(path=SCREENSHOTS / "rooms.png")
        await page.wait_for_function("document.getElementById('refreshed').textContent.includes('updated')")
        seen.text["refreshed"] = await page.inner_text("#refreshed")
        # The filter: rooms with their agent; on a loaded machine the meetings may all have ended by now
        # (Chromium's start-up alone can take seconds), then the closed rooms, which stay.
        for phase in ("agent_active", "closed"):
            await page.click(f".filters a.phase-{phase}")
            await page.wait_for_url(f"**state={phase}**")
            await page.wait_for_selector("table.rooms tbody tr")
            if await page.inner_text(".filters a[aria-current] b") != "0":
                break
        seen.text["filter"] = phase
        seen.text["filtered"] = ",".join(
            str(state)
            for state in await page.locator("table.rooms tbody tr").evaluate_all(
                "rows => rows.map(r => r.dataset.state)"
            )
        )
        await page.goto(f"{warden.url}/rooms/{recovered}")
        await page.wait_for_selector("svg.timeline")
        seen.text["room"] = await page.inner_text("main")
        seen.counts["deadlines"] = await page.locator("svg.timeline g.deadline").count()
        await page.screenshot(path=SCREENSHOTS / "room.png", full_page=True)
        await page.goto(f"{warden.url}/incidents")
        await page.wait_for_selector("article.incident")
        seen.text["incidents"] = await page.inner_text("main")
        await page.screenshot(path=SCREENSHOTS / "incidents.png", full_page=True)


async def simulate(warden: Warden, fake: FakeLiveKit, port: int, seen: Seen) -> Report:
    async with serve(fake.app, port=port), httpx.AsyncClient(timeout=10.0) as client:
        sim = Simulation(
            fake,
            client,
            f"{warden.url}/webhook",
            AGENT,
            parse_failures(FAILURES),
            rng=random.Random(7),
            meeting=(14.0, 18.0),
            agent_delay=(0.2, 0.6),
        )
        running = asyncio.create_task(sim.run(ROOMS, over=8.0))

        recovered: list[str] = []

        async def recovering() -> bool:
            """An incident is open and a room whose first agent never came has one now."""
            incidents = (await client.get(f"{warden.url}/api/incidents")).json()["incidents"]
            for name, fate in list(sim.fates.items()):
                room = (await client.get(f"{warden.url}/api/rooms/{name}")).json()
                if fate == "never_joins" and room.get("state") == "agent_active":
                    recovered.append(name)
                    break
            return bool(incidents) and bool(recovered)

        await wait_until(recovering, "a recovered room and an incident", 60, every=POLL)
        await look(warden, recovered[0], seen)
        report = await running

        async def all_closed() -> bool:
            rooms = (await client.get(f"{warden.url}/api/rooms", params={"limit": 200})).json()["rooms"]
            return len(rooms) == ROOMS and all(r["state"] == "closed" for r in rooms)

        await wait_until(all_closed, "every room closed in Warden", 60, every=POLL)
        return report


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, redis_server: str) -> Iterator[Run]:
    need_chromium()
    tmp = tmp_path_factory.mktemp("operator")
    redis.Redis.from_url(redis_server).flushdb()
    port, metrics_port = free_port(), free_port()
    livekit = f"http://127.0.0.1:{port}"
    env = {
        "REDIS_URL": redis_server,
        "DATABASE_URL": f"sqlite:///{tmp}/w.db",
        "LIVEKIT_URL": livekit,
        "LK_AGENTS_URL": livekit,
        "WARDEN_CLOUD_AGENT_ID": "CA_simulated",
        "WARDEN_AGENT_NAME": AGENT,
        "WARDEN_JOIN_SLA_SECONDS": "1.5",
        "WARDEN_REJOIN_SLA_SECONDS": "1.5",
        "WARDEN_ACTIVE_SLA_SECONDS": "2",
        "WARDEN_SWEEP_SECONDS": "1",
        "WARDEN_OUTAGE_ROOMS": "3",
        "WARDEN_OUTAGE_WINDOW_SECONDS": "4",
        "WARDEN_RESTART_GRACE_SECONDS": "1",
        # On this compressed clock a small incident before the outage (never-joining agents) may take the
        # restart; with the default 300 s cooldown the outage's own restart would then be refused.
        "WARDEN_RESTART_COOLDOWN_SECONDS": "2",
        "WARDEN_WORKER_METRICS_PORT": str(metrics_port),
    }
    fake = FakeLiveKit(KEY, SECRET, cloud_agents={"CA_simulated": AGENT})
    seen = Seen()
    with run_warden(tmp, **env) as warden:
        try:
            report = asyncio.run(simulate(warden, fake, port, seen))
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{warden.log_text()[-5000:]}") from None
        yield Run(warden, report, fake, seen, f"http://127.0.0.1:{metrics_port}/metrics")


def sample(metrics: str, name: str, **labels: str) -> float:
    """The sum of one metric's samples whose labels include `labels` (0 when none)."""
    total = 0.0
    for found in re.finditer(rf"^{re.escape(name)}(?:\{{(.*)\}})? (\S+)$", metrics, re.M):
        have = dict(re.findall(r'(\w+)="([^"]*)"', found.group(1) or ""))
        if all(have.get(k) == v for k, v in labels.items()):
            total += float(found.group(2))
    return total


def test_every_room_got_a_working_agent_despite_what_was_injected(run: Run) -> None:
    report = run.report
    timelines = [
        [
            (e["type"], e["participant"], e["received_at"][11:23])
            for e in httpx.get(f"{run.warden.url}/api/rooms/{n}").json()["timeline"]
        ]
        for n in report.unserved_rooms
    ]
    incidents = httpx.get(f"{run.warden.url}/api/incidents").json()["incidents"]
    assert report.unserved_rooms == [], (timelines, incidents, run.fake.restarts, report.injected)
    assert report.rooms == ROOMS and report.unserved == 0 and report.webhook_errors == 0
    assert sum(report.injected.values()) == ROOMS
    assert report.injected["never_joins"] and report.injected["leaves"] and report.injected["stalls"]
    # A restart for the outage; at most one an incident, never one a room.
    assert report.outage_rooms >= 1 and 1 <= report.restarts <= len(incidents) < report.rooms
    assert report.evictions >= report.injected["stalls"]  # each stalled agent removed before re-dispatch
    failed = report.injected["never_joins"] + report.injected["leaves"] + report.injected["stalls"]
    assert report.warden_dispatches >= failed


def drained_metrics(run: Run) -> tuple[str, str]:
    """Both metrics pages (web, worker), read at an instant when the run has drained: no job due (the
    sweep cron or a heartbeat may have just queued one), no incident open, every webhook applied."""

    def read() -> tuple[dict[str, float], str, str]:
        web, worker = httpx.get(f"{run.warden.url}/metrics").text, httpx.get(run.worker_metrics_url).text
        values = {
            "ready jobs": sample(web, "warden_queue_jobs", state="ready"),
            "open incidents": sample(web, "warden_open_incidents"),
            "webhooks applied": sample(worker, "warden_jobs_total", function="apply_webhook", outcome="ok"),
        }
        return values, web, worker

    drained = {"ready jobs": 0, "open incidents": 0, "webhooks applied": run.report.webhooks}
    _, web, worker = read_until(
        read,
        lambda reading: reading[0] == drained,
        f"the run drained, {drained}",
        describe=lambda reading: reading[0],
    )
    return web, worker


def test_both_metrics_endpoints_agree_with_what_happened(run: Run) -> None:
    report = run.report
    web, worker = drained_metrics(run)
    accepted = sum(
        float(v)
        for v in re.findall(r'^warden_webhooks_total\{event="\w+",verdict="queued"\} (\S+)$', web, re.M)
    )
    assert accepted == report.webhooks
    assert sample(web, "warden_rooms", phase="closed") == ROOMS
    assert sample(worker, "warden_time_to_agent_seconds_count") == ROOMS
    assert sample(worker, "warden_sla_breaches_total", kind="never_joined") >= report.injected["never_joins"]
    assert sample(worker, "warden_sla_breaches_total", kind="left") >= report.injected["leaves"]
    assert sample(worker, "warden_sla_breaches_total", kind="stalled") >= report.injected["stalls"]
    assert sample(worker, "warden_redispatches_total", outcome="dispatched") == report.warden_dispatches
    restarted = sample(worker, "warden_restarts_total", via="LiveKit Cloud agent restart", outcome="ok")
    assert restarted == report.restarts >= 1, [line for line in worker.splitlines() if "restart" in line]
    assert sample(worker, "warden_job_duration_seconds_count", function="on_deadline") > 0


def test_dashboard_showed_rooms_recoveries_and_the_incident(run: Run) -> None:
    rooms, room, incidents = run.seen.text["rooms"], run.seen.text["room"], run.seen.text["incidents"]
    assert "Time to agent" in rooms and "agent active" in rooms and "sim-" in rooms
    assert run.seen.counts["bars"] == 9  # eight wait buckets and "no agent yet"
    assert run.seen.text["refreshed"].startswith("updated")
    assert set(run.seen.text["filtered"].split(",")) == {run.seen.text["filter"]}  # only the rooms in it
    assert "Re-dispatches" in room and "redispatch" in room.lower() and run.seen.counts["deadlines"] >= 2
    assert "CA_simulated" in incidents or "LiveKit Cloud agent restart" in incidents
    for shot in SHOTS:
        assert (SCREENSHOTS / shot).stat().st_size > 10_000


def cli(run: Run, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "service.cli", "--url", run.warden.url, *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_cli_lists_rooms_one_room_and_incidents(run: Run) -> None:
    listed = cli(run, "rooms", "--state", "closed", "--limit", "100")
    assert f"Rooms ({ROOMS} closed" in listed and listed.count("sim-") == ROOMS
    name = re.findall(r"sim-\d+-\d{4}", listed)[0]
    one = cli(run, "room", name)
    assert name in one and "room_finished" in one and "closed" in one
    # expected because of WARDEN_AGENT_NAME, and of its dispatch too once a check listed it
    assert re.search(rf"expected agents: {AGENT} \(setting(/dispatch)?: closed\)", re.sub(r"\s+", " ", one))
    incidents = cli(run, "incidents")
    assert "resolved" in incidents and AGENT in incidents


def test_cli_replay_resends_recorded_webhooks_signed(run: Run, tmp_path: Path) -> None:
    recording = tmp_path / "webhooks.jsonl"
    recording.write_text(
        '{"event":"room_started","room":{"sid":"RM_replayed","name":"replayed"},"id":"EV_r1","createdAt":"1"}\n'
        "not json\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "service.cli", "--url", run.warden.url, "replay", str(recording)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**run.warden.env},
        timeout=60,
    )
    assert done.returncode == 1 and "1 webhook(s) accepted, 1 refused or skipped, of 2" in done.stderr

    def replayed() -> Any:
        return httpx.get(f"{run.warden.url}/api/rooms/replayed").status_code == 200

    deadline = time.monotonic() + 20
    while not replayed() and time.monotonic() < deadline:
        time.sleep(0.1)  # the worker applies it asynchronously; polled as an operator would
    assert replayed()


def test_cli_simulate_prints_what_it_injected_and_what_warden_did(run: Run) -> None:
    """`python -m devtools.simulate` itself, on the port Warden's LIVEKIT_URL names (the fixture's
    stand-in is gone)."""
    port = run.warden.env["LIVEKIT_URL"].rsplit(":", 1)[1]
    # meetings long enough for a re-dispatch: a dispatch no worker took is replaced only once LiveKit
    # would have listed its job (`LISTING_GRACE`, 6 s after it was made)
    argv = ["--url", run.warden.url, "--rooms", "4", "--over", "1", "--meeting", "9-10"]
    argv += ["--port", port, "--key", KEY, "--secret", SECRET, "--agent-name", AGENT]
    argv += ["--failure", "never-joins:1", "--seed", "1"]
    done = subprocess.run(
        [sys.executable, "-m", "devtools.simulate", *argv],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = re.sub(r"\s+", " ", done.stdout)
    assert "4 rooms simulated" in out and "never-joins │ 4 │ 4" in out
    assert re.search(r"Warden: re-dispatches │ [4-9]", out), out

"""`WARDEN_LOG_FORMAT=json`: release, web and worker from the Procfile write one JSON object per line, as a
PaaS log drain reads them; the worker's line about an event names its room, event and outcome."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import httpx

from tests.support.helpers import fixture, sign
from tests.support.processes import ROOT, procfile_argv, run_warden
from tests.support.settings import KEY, SECRET
from tests.support.waiting import read_until

FIELDS = {"time", "level", "process", "logger", "message"}


def json_lines(text: str, process: str) -> list[dict[str, str]]:
    """Every line of `text` read as a JSON object with the fields, from `process`."""
    entries = []
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            raise AssertionError(f"{process} wrote a line that is not JSON: {line!r}") from None
        assert isinstance(entry, dict) and entry.keys() >= FIELDS, line
        assert entry["process"] == process, line
        entries.append(entry)
    assert entries, f"{process} wrote nothing"
    return entries


def test_every_line_of_release_web_and_worker_is_a_json_object(tmp_path: Path, redis_url: str) -> None:
    settings = {
        "REDIS_URL": redis_url,
        "DATABASE_URL": f"sqlite:///{tmp_path}/warden.db",
        "WARDEN_LOG_FORMAT": "json",
        "WARDEN_AGENT_NAME": "my-agent",
    }
    release_env = {**os.environ, "LIVEKIT_API_KEY": KEY, "LIVEKIT_API_SECRET": SECRET, **settings}
    release = subprocess.run(
        procfile_argv("release"), env=release_env, cwd=ROOT, capture_output=True, text=True
    )
    assert release.returncode == 0, release.stderr
    messages = [e["message"] for e in json_lines(release.stdout + release.stderr, "release")]
    assert "database is at the newest schema" in messages

    with run_warden(tmp_path, **settings) as warden:
        raw = fixture("participant_joined_standard")
        accepted = httpx.post(
            f"{warden.url}/webhook", content=raw, headers={"Authorization": sign(raw, KEY, SECRET)}
        )
        assert accepted.status_code == 200, accepted.text
        refused = httpx.post(f"{warden.url}/webhook", content=raw, headers={"Authorization": "Bearer forged"})
        assert refused.status_code == 401
        read_until(
            lambda: (tmp_path / "worker-0.log").read_text(),
            lambda text: '"outcome": "applied"' in text,
            "the worker to log the event it recorded",
        )
    worker = json_lines((tmp_path / "worker-0.log").read_text(), "worker")
    web = json_lines((tmp_path / "web-0.log").read_text(), "web")

    recorded = [e for e in worker if e.get("outcome")]
    # (the join SLA's deadline may have passed too on a slow machine: it is about the same room)
    assert (recorded[0]["event"], recorded[0]["outcome"], recorded[0]["level"]) == (
        "participant_joined",
        "applied",
        "INFO",
    )
    assert {e["room"] for e in recorded} == {"call-42"}
    assert any(e["logger"] == "arq.worker" for e in worker)  # the libraries' lines too
    assert any(e["level"] == "WARNING" and "webhook rejected" in e["message"] for e in web)
    assert any(e["logger"] == "uvicorn.access" and "POST /webhook" in e["message"] for e in web)
    assert any(e["logger"] == "uvicorn.error" for e in web)
    assert all(SECRET not in line for line in (tmp_path / "worker-0.log").read_text().splitlines())

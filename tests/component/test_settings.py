"""Start-up configuration: good values are normalised, bad ones stop the process naming the variable."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.support.processes import ROOT, procfile_argv
from tests.support.settings import KEY, SECRET, make_settings
from workers.core.errors import SettingsError
from workers.settings import load_settings


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://u:p@db:5432/warden", "postgresql+asyncpg://u:p@db:5432/warden"),
        ("postgresql://u@db/warden", "postgresql+asyncpg://u@db/warden"),
        ("sqlite:///var/x.db", "sqlite+aiosqlite:///var/x.db"),
    ],
)
def test_database_urls_people_paste_are_accepted(given: str, expected: str) -> None:
    assert make_settings(database_url=given).database_url == expected


def test_livekit_keys_add_rotating_keys_beside_the_main_one() -> None:
    settings = make_settings(livekit_keys="old: s1\nolder: s2")
    assert settings.api_keys == {"old": "s1", "older": "s2", KEY: SECRET}


def test_warden_rooms_globs_choose_the_watched_rooms() -> None:
    settings = make_settings(warden_rooms="call-*, support-?")
    assert [settings.watches(n) for n in ("call-42", "support-1", "support-12", "lobby")] == [
        True,
        True,
        False,
        False,
    ]
    assert make_settings().watches("anything")


@pytest.mark.parametrize(
    ("overrides", "variable"),
    [
        ({"livekit_url": "livekit.example.com"}, "LIVEKIT_URL"),
        ({"redis_url": "http://localhost"}, "REDIS_URL"),
        ({"database_url": "mysql://x"}, "DATABASE_URL"),
        ({"livekit_keys": "only-a-key-and-a-hidden-value"}, "LIVEKIT_KEYS"),
        ({"livekit_api_key": "", "livekit_api_secret": ""}, "LIVEKIT_API_KEY"),
        ({"livekit_api_secret": ""}, "LIVEKIT_API_SECRET"),
        ({"port": 70000}, "PORT"),
        ({"warden_worker_concurrency": 0}, "WARDEN_WORKER_CONCURRENCY"),
        ({"warden_room_events_per_second": -1}, "WARDEN_ROOM_EVENTS_PER_SECOND"),
        ({"warden_room_events_per_second": 0.001}, "WARDEN_ROOM_EVENTS_PER_SECOND"),
        ({"warden_room_people_listed": 0}, "WARDEN_ROOM_PEOPLE_LISTED"),
        ({"warden_alert_retry_seconds": 0}, "WARDEN_ALERT_RETRY_SECONDS"),
        ({"warden_claim_lease_seconds": "soon"}, "WARDEN_CLAIM_LEASE_SECONDS"),
        ({"warden_pagerduty_url": "events.pagerduty.com/hidden-value"}, "WARDEN_PAGERDUTY_URL"),
        ({"warden_opsgenie_url": "ftp://api.opsgenie.com/hidden-value"}, "WARDEN_OPSGENIE_URL"),
        ({"warden_incident_webhook_url": "https:///hidden-value"}, "WARDEN_INCIDENT_WEBHOOK_URL"),
        ({"warden_alert_webhook_url": "hooks.slack.com/services/hidden-value"}, "WARDEN_ALERT_WEBHOOK_URL"),
        ({"warden_log_format": "yaml"}, "WARDEN_LOG_FORMAT"),
        ({"warden_web_concurrency": 0}, "WARDEN_WEB_CONCURRENCY"),
        ({"warden_web_concurrency": "many"}, "WARDEN_WEB_CONCURRENCY"),
        ({"warden_header_timeout_seconds": 0}, "WARDEN_HEADER_TIMEOUT_SECONDS"),
        ({"warden_header_timeout_seconds": 3600}, "WARDEN_HEADER_TIMEOUT_SECONDS"),
        ({"warden_body_timeout_seconds": -1}, "WARDEN_BODY_TIMEOUT_SECONDS"),
        ({"warden_body_timeout_seconds": "soon"}, "WARDEN_BODY_TIMEOUT_SECONDS"),
        ({"warden_keepalive_seconds": 0}, "WARDEN_KEEPALIVE_SECONDS"),
        ({"warden_keepalive_seconds": "forever"}, "WARDEN_KEEPALIVE_SECONDS"),
        ({"warden_discover_seconds": 1}, "WARDEN_DISCOVER_SECONDS"),
        ({"warden_discover_seconds": "hourly"}, "WARDEN_DISCOVER_SECONDS"),
        ({"warden_discover_calls_per_second": 0.1}, "WARDEN_DISCOVER_CALLS_PER_SECOND"),
        ({"warden_canary_every": "0s"}, "WARDEN_CANARY_EVERY"),
        ({"warden_canary_every": "2d"}, "WARDEN_CANARY_EVERY"),
        ({"warden_canary_every": "soon"}, "WARDEN_CANARY_EVERY"),
        ({"warden_canary_agents": "voice,,notes"}, "WARDEN_CANARY_AGENTS"),
        ({"warden_canary_failures": 0}, "WARDEN_CANARY_FAILURES"),
        ({"warden_canary_sla_seconds": 0}, "WARDEN_CANARY_SLA_SECONDS"),
        ({"warden_discover_calls_per_second": 0}, "WARDEN_DISCOVER_CALLS_PER_SECOND"),
        ({"warden_liveness_seconds": -1}, "WARDEN_LIVENESS_SECONDS"),
        ({"warden_liveness_calls_per_second": 0.5}, "WARDEN_LIVENESS_CALLS_PER_SECOND"),
        ({"warden_stuck_initializing_seconds": -1}, "WARDEN_STUCK_INITIALIZING_SECONDS"),
        ({"warden_stuck_thinking_seconds": "forever"}, "WARDEN_STUCK_THINKING_SECONDS"),
        ({"warden_slo": 1}, "WARDEN_SLO"),
        ({"warden_slo": 0}, "WARDEN_SLO"),
        ({"warden_slo": "99%"}, "WARDEN_SLO"),
        ({"warden_slo_window": "a month"}, "WARDEN_SLO_WINDOW"),
        ({"warden_slo_window": "31d"}, "WARDEN_SLO_WINDOW"),  # past the retention (30d)
        ({"warden_slo_window": "2d", "warden_retention": "1d"}, "WARDEN_SLO_WINDOW"),
    ],
)
def test_bad_setting_names_the_variable_and_not_the_secret(
    overrides: dict[str, object], variable: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        make_settings(**overrides)
    assert str(caught.value).startswith(f"{variable}:")
    assert SECRET not in str(caught.value) and "hidden-value" not in str(caught.value)


def test_service_levels_default_to_99_percent_over_30_days_and_a_window_within_the_retention() -> None:
    settings = make_settings()
    assert (settings.warden_slo, settings.slo_window_seconds) == (0.99, 30 * 86400)
    assert make_settings(warden_slo_window="7d", warden_retention="7d").slo_window_seconds == 7 * 86400
    assert make_settings(warden_retention="3d").slo_window == "3d"  # unset: never past the retention
    assert make_settings(warden_retention="90d").slo_window == "30d"


def test_the_look_at_rooms_expecting_no_agent_is_bounded_in_calls_per_second() -> None:
    assert (make_settings().warden_discover_seconds, make_settings().discover_batch) == (60, 12)
    assert make_settings(warden_discover_calls_per_second=0.4).discover_batch == 1
    with pytest.raises(SettingsError, match=r"must be 0\.4 or more"):
        make_settings(warden_discover_calls_per_second=0.3)


def test_the_liveness_look_and_the_stuck_limits_default_as_documented() -> None:
    settings = make_settings()
    assert (settings.warden_liveness_seconds, settings.liveness_batch) == (15, 100)  # 100 calls a second
    policy = settings.policy()
    assert (policy.stuck_initializing, policy.stuck_thinking) == (30.0, 60.0)
    assert make_settings(warden_liveness_calls_per_second=2.5).liveness_batch == 2


def test_alert_routes_default_to_the_public_endpoints_and_are_off_until_given_a_key() -> None:
    settings = make_settings()
    assert settings.warden_pagerduty_url == "https://events.pagerduty.com/v2/enqueue"
    assert settings.warden_opsgenie_url == "https://api.opsgenie.com"
    assert not settings.warden_pagerduty_routing_key.get_secret_value()
    assert not settings.warden_opsgenie_api_key.get_secret_value()
    assert not settings.warden_incident_webhook_url.get_secret_value()
    eu = make_settings(warden_opsgenie_url="https://api.eu.opsgenie.com", warden_opsgenie_api_key="k")
    assert eu.warden_opsgenie_url == "https://api.eu.opsgenie.com"
    assert "k" not in repr(eu.warden_opsgenie_api_key)


def test_worker_concurrency_is_the_number_of_jobs_a_worker_runs_at_once() -> None:
    from workers.jobs.runtime.worker import worker_settings

    assert worker_settings(make_settings())["max_jobs"] == 200
    assert worker_settings(make_settings(warden_worker_concurrency=20))["max_jobs"] == 20


def test_dotenv_file_is_read(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(
        f"LIVEKIT_API_KEY=fromfile\nLIVEKIT_API_SECRET={SECRET}\nWARDEN_AGENT_NAME=notetaker\n"
    )
    settings = load_settings(_env_file=env_file)
    assert (settings.livekit_api_key, settings.warden_agent_name) == ("fromfile", "notetaker")


GOOD_LIVEKIT_URL = "http://127.0.0.1:7880"


def _started(process: str, **variables: str) -> subprocess.CompletedProcess[str]:
    """The Procfile's `process` run with LiveKit's key and secret and `variables`, and no other of
    Warden's or LiveKit's settings from this environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LIVEKIT_", "WARDEN_"))}
    env.update({"LIVEKIT_API_KEY": KEY, "LIVEKIT_API_SECRET": SECRET, **variables})
    return subprocess.run(
        procfile_argv(process), env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("process", ["web", "worker", "release"])
def test_procfile_process_refuses_to_start_on_a_bad_setting(process: str) -> None:
    done = _started(process, LIVEKIT_URL="nonsense")
    assert done.returncode == 2
    assert "LIVEKIT_URL: must be a ws://, wss://, http:// or https:// URL" in done.stderr
    assert "Traceback" not in done.stderr


def test_worker_refuses_to_start_without_livekit_url() -> None:
    done = _started("worker")
    assert done.returncode == 2
    assert "LIVEKIT_URL: required by the worker" in done.stderr


def test_self_signed_rediss_can_be_accepted_for_heroku() -> None:
    strict = make_settings(redis_url="rediss://h:6380/0")
    assert (strict.arq_redis().ssl_cert_reqs, strict.redis_pool_options()) == ("required", {})
    lax = make_settings(redis_url="rediss://h:6380/0", warden_redis_tls_verify=False)
    assert (lax.arq_redis().ssl_cert_reqs, lax.redis_pool_options()) == ("none", {"ssl_cert_reqs": "none"})
    assert make_settings(redis_url="redis://h/0", warden_redis_tls_verify=False).redis_pool_options() == {}


def test_worker_refuses_to_start_on_a_bad_alert_route_url_without_repeating_it() -> None:
    done = _started(
        "worker", LIVEKIT_URL=GOOD_LIVEKIT_URL, WARDEN_INCIDENT_WEBHOOK_URL="hooks.example.com/router-token"
    )
    assert done.returncode == 2
    assert "WARDEN_INCIDENT_WEBHOOK_URL: must be an http:// or https:// URL with a host" in done.stderr
    assert "router-token" not in done.stderr and "Traceback" not in done.stderr


def test_slow_client_limits_default_to_bounds_a_webhook_never_nears() -> None:
    settings = make_settings()
    assert (
        settings.warden_web_concurrency,
        settings.warden_header_timeout_seconds,
        settings.warden_body_timeout_seconds,
    ) == (500, 10.0, 10.0)


@pytest.mark.parametrize(
    ("soft", "hard", "concurrency", "runs_with"),
    [
        (1024, 4096, 500, 1024),  # the default fits under the usual soft limit: left alone
        (1024, 4096, 2000, 4096),  # raised to the hard limit, as Go's runtime does
        (1024, 1024, 2000, None),  # cannot fit: start-up stops, naming the variable
    ],
)
def test_web_concurrency_must_fit_the_open_files_limit(
    monkeypatch: pytest.MonkeyPatch, soft: int, hard: int, concurrency: int, runs_with: int | None
) -> None:
    import resource

    from service.server import open_files_limit

    raised: list[tuple[int, int]] = []
    monkeypatch.setattr(resource, "getrlimit", lambda _: (soft, hard))
    monkeypatch.setattr(resource, "setrlimit", lambda _, limits: raised.append(limits))
    if runs_with is None:
        with pytest.raises(SettingsError) as caught:
            open_files_limit(concurrency)
        assert str(caught.value).startswith(
            "WARDEN_WEB_CONCURRENCY: 2000 requests at once need 2128 open files"
        )
        assert raised == []
    else:
        assert open_files_limit(concurrency) == runs_with
        assert raised == ([] if runs_with == soft else [(hard, hard)])


def test_the_fallback_settings_default_as_documented_and_reach_the_policy() -> None:
    policy = make_settings().policy()
    assert (policy.fallback_agent, policy.fallback_after, policy.fallback_stays) == ("", None, False)
    assert (policy.fallback_transfer_to, policy.notify_room) == ("", False)
    given = make_settings(
        warden_fallback_agent="apology",
        warden_fallback_after_seconds=45,
        warden_fallback_stays=True,
        warden_fallback_transfer_to="sip:oncall@pbx.example",
        warden_notify_room=True,
    ).policy()
    assert (given.fallback_agent, given.fallback_after, given.fallback_stays, given.notify_room) == (
        "apology",
        45.0,
        True,
        True,
    )
    assert given.fallback_transfer_to == "sip:oncall@pbx.example" and "oncall" not in repr(given)


@pytest.mark.parametrize(
    ("overrides", "variable"),
    [
        ({"warden_fallback_transfer_to": "+15550100"}, "WARDEN_FALLBACK_TRANSFER_TO"),
        ({"warden_fallback_transfer_to": "tel:call me 15550100"}, "WARDEN_FALLBACK_TRANSFER_TO"),
        ({"warden_fallback_after_seconds": 0}, "WARDEN_FALLBACK_AFTER_SECONDS"),
        ({"warden_fallback_stays": "maybe"}, "WARDEN_FALLBACK_STAYS"),
        ({"warden_notify_room": "loud"}, "WARDEN_NOTIFY_ROOM"),
    ],
)
def test_a_bad_fallback_setting_names_the_variable_and_never_the_number(
    overrides: dict[str, object], variable: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        make_settings(**overrides)
    assert str(caught.value).startswith(f"{variable}:")
    assert "15550100" not in str(caught.value)


def test_worker_refuses_to_start_on_a_bad_transfer_target_without_repeating_it() -> None:
    done = _started("worker", LIVEKIT_URL=GOOD_LIVEKIT_URL, WARDEN_FALLBACK_TRANSFER_TO="+15550100")
    assert done.returncode == 2
    assert "WARDEN_FALLBACK_TRANSFER_TO: must be a tel:+... number or a sip: URI" in done.stderr
    assert "15550100" not in done.stderr and "Traceback" not in done.stderr

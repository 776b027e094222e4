"""Warden's settings: every environment variable in one place, validated at start-up.

Both processes (web and worker) call `load_settings()` once; a wrong value raises `SettingsError`
whose message names the variable, and the entry points print it and exit with status 2. The rest of
the code receives plain values (the state machine never imports this module).
"""

from __future__ import annotations

import fnmatch
import sys
from dataclasses import replace
from functools import cached_property
from pathlib import Path
from typing import Literal

from arq.connections import RedisSettings
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from workers.core.canary import CanaryPolicy
from workers.core.errors import SettingsError
from workers.core.room import Policy
from workers.core.rules import Rule, Rules
from workers.rules_file import load_rules
from workers.setting_values import (
    URL_SCHEMES,
    describe,
    normalise_database_url,
    parse_duration,
    parse_keys,
)
from workers.settings_canaries import CanarySettings
from workers.settings_escalation import EscalationSettings
from workers.settings_fallback import FallbackSettings
from workers.settings_modes import ModeSettings
from workers.settings_slo import SloSettings
from workers.settings_tokens import TokenSettings

DEFAULT_SQLITE_PATH = Path("var") / "warden.db"
# The `discover` cron runs this often, looking at a room with ListParticipants and ListDispatch.
DISCOVER_TICK_SECONDS = 5
CALLS_PER_LOOK = 2
# The `liveness` cron runs this often, looking at a room with ListParticipants (its agents' state).
LIVENESS_TICK_SECONDS = 1


class Settings(
    EscalationSettings, CanarySettings, FallbackSettings, TokenSettings, SloSettings, ModeSettings
):
    """Environment variables (and a `.env` file) read by Warden; names match the variables."""

    model_config = SettingsConfigDict(
        env_file=".env", extra="ignore", case_sensitive=False, env_ignore_empty=True
    )

    livekit_url: str = ""
    livekit_api_key: str = ""
    livekit_api_secret: SecretStr = SecretStr("")
    livekit_keys: SecretStr = SecretStr("")
    redis_url: str = "redis://127.0.0.1:6379/0"
    database_url: str = f"sqlite:///{DEFAULT_SQLITE_PATH}"
    warden_agent_name: str = ""
    warden_rules: str = ""
    warden_rooms: str = ""
    warden_queue_name: str = "warden:queue"
    warden_log_level: str = "INFO"
    warden_log_format: str = "text"
    warden_max_body_bytes: int = Field(default=1024 * 1024, gt=0)
    warden_host: str = "0.0.0.0"
    warden_web_concurrency: int = Field(default=500, ge=1, le=100_000)
    warden_header_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    warden_body_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    warden_keepalive_seconds: int = Field(default=75, ge=1, le=3600)
    warden_join_sla_seconds: float = Field(default=15.0, gt=0)
    warden_sla_from: Literal["person_joined", "room_started"] = "person_joined"
    warden_rejoin_sla_seconds: float = Field(default=20.0, gt=0)
    warden_active_sla_seconds: float | None = Field(default=None, gt=0)
    warden_stuck_initializing_seconds: float = Field(default=30.0, ge=0)
    warden_stuck_thinking_seconds: float = Field(default=60.0, ge=0)
    warden_liveness_seconds: int = Field(default=15, ge=0, le=3600)
    warden_liveness_calls_per_second: float = Field(default=100.0, ge=1, le=10_000)
    warden_max_redispatches: int = Field(default=2, ge=0, le=20)
    warden_dispatch_on_start: bool = False
    warden_sweep_seconds: int = Field(default=5, ge=1, le=30)
    warden_livekit_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    warden_redis_tls_verify: bool = True
    warden_reconcile_seconds: int = 30
    warden_reconcile_batch: int = Field(default=100, ge=1, le=10_000)
    warden_discover_seconds: int = Field(default=60, ge=DISCOVER_TICK_SECONDS, le=3600)
    warden_discover_calls_per_second: float = Field(default=5.0, le=1000)
    warden_worker_concurrency: int = Field(default=200, ge=1, le=2_000)
    warden_room_events_per_second: float = Field(default=1000.0, ge=0, le=1_000_000)
    warden_room_people_listed: int = Field(default=200, ge=1, le=100_000)
    warden_timeline_shown: int = Field(default=1000, ge=10, le=100_000)
    port: int = Field(default=8000, ge=1, le=65535)
    warden_worker_metrics_port: int = Field(default=0, ge=0, le=65535)
    warden_retention: str = "30d"

    @field_validator("livekit_url")
    @classmethod
    def _check_livekit_url(cls, value: str) -> str:
        if value and not value.startswith(URL_SCHEMES):
            raise ValueError("must be a ws://, wss://, http:// or https:// URL")
        return value

    @field_validator("warden_room_events_per_second")
    @classmethod
    def _check_room_pace(cls, value: float) -> float:
        if 0 < value < 10:
            raise ValueError(
                "must be 0 (no spacing) or at least 10: slower, a room's webhooks would wait minutes"
            )
        return value

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str) -> str:
        try:
            RedisSettings.from_dsn(value)
        except (RuntimeError, ValueError):
            raise ValueError("must be a redis://, rediss:// or unix:// URL (database a number)") from None
        return value

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        return normalise_database_url(value)

    @field_validator("warden_reconcile_seconds")
    @classmethod
    def _check_reconcile(cls, value: int) -> int:
        if not (value > 0 and (60 % value == 0 or (value % 60 == 0 and 3600 % value == 0))):
            raise ValueError(
                "must divide a minute (e.g. 10, 15, 30) or an hour in whole minutes (60, 120, 300)"
            )
        return value

    @field_validator("warden_discover_calls_per_second")
    @classmethod
    def _check_discover_rate(cls, value: float) -> float:
        if value * DISCOVER_TICK_SECONDS < CALLS_PER_LOOK:
            least = CALLS_PER_LOOK / DISCOVER_TICK_SECONDS
            raise ValueError(
                f"must be {least:g} or more: a look at one room is {CALLS_PER_LOOK} calls, and Warden looks "
                f"every {DISCOVER_TICK_SECONDS} s"
            )
        return value

    @field_validator("warden_retention")
    @classmethod
    def _check_retention(cls, value: str) -> str:
        parse_duration(value)
        return value.strip().lower()

    @field_validator("livekit_keys")
    @classmethod
    def _check_keys(cls, value: SecretStr) -> SecretStr:
        parse_keys(value.get_secret_value())
        return value

    @field_validator("warden_rooms")
    @classmethod
    def _check_rooms(cls, value: str) -> str:
        if any(not p.strip() for p in value.split(",")) and value.strip():
            raise ValueError("must be comma-separated glob patterns such as 'call-*,support-*'")
        return value

    @field_validator("warden_log_level")
    @classmethod
    def _check_log_level(cls, value: str) -> str:
        if value.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("must be DEBUG, INFO, WARNING or ERROR")
        return value.upper()

    @field_validator("warden_log_format")
    @classmethod
    def _check_log_format(cls, value: str) -> str:
        if value.lower() not in ("text", "json"):
            raise ValueError("must be text or json")
        return value.lower()

    @model_validator(mode="after")
    def _check_credentials(self) -> Settings:
        if bool(self.livekit_api_key) != bool(self.livekit_api_secret.get_secret_value()):
            missing = "LIVEKIT_API_SECRET" if self.livekit_api_key else "LIVEKIT_API_KEY"
            raise ValueError(f"{missing}: must be set together with the other half of the key pair")
        if not self.api_keys:
            raise ValueError(
                "LIVEKIT_API_KEY: no LiveKit key configured "
                "(set LIVEKIT_API_KEY and LIVEKIT_API_SECRET, or LIVEKIT_KEYS)"
            )
        return self

    @cached_property
    def api_keys(self) -> dict[str, str]:
        """Every API key Warden accepts webhooks from, mapped to its secret."""
        keys = parse_keys(self.livekit_keys.get_secret_value())
        if self.livekit_api_key:
            keys[self.livekit_api_key] = self.livekit_api_secret.get_secret_value()
        return keys

    @cached_property
    def room_patterns(self) -> tuple[str, ...]:
        return tuple(p.strip() for p in self.warden_rooms.split(",") if p.strip())

    def watches(self, room_name: str) -> bool:
        """True when `WARDEN_ROOMS` is empty or one of its glob patterns matches `room_name`."""
        patterns = self.room_patterns
        return not patterns or any(fnmatch.fnmatchcase(room_name, p) for p in patterns)

    def policy(self) -> Policy:
        """The state machine's policy, as plain values."""
        return Policy(
            agent_name=self.warden_agent_name,
            join_sla=self.warden_join_sla_seconds,
            rejoin_sla=self.warden_rejoin_sla_seconds,
            active_sla=self.warden_active_sla_seconds,
            max_redispatches=self.warden_max_redispatches,
            sla_from_room_start=self.warden_sla_from == "room_started",
            dispatch_on_start=self.warden_dispatch_on_start,
            restart_grace=self.warden_restart_grace_seconds,
            people_listed=self.warden_room_people_listed,
            stuck_initializing=self.warden_stuck_initializing_seconds or None,
            stuck_thinking=self.warden_stuck_thinking_seconds or None,
            **self.fallback_policy(),
        )

    @cached_property
    def rule_list(self) -> tuple[Rule, ...]:
        """The rules of `WARDEN_RULES` (checked when the settings are loaded)."""
        return load_rules(self.warden_rules) if self.warden_rules else ()

    def rules(self) -> Rules:
        """Which agents each room expects, and on what terms: the rules file, then `WARDEN_AGENT_NAME`."""
        return replace(Rules.of(self.rule_list, self.policy()), observe=self.observing)

    @property
    def room_spacing_ms(self) -> float:
        """How far apart in queue time one room's webhooks are scored (`WARDEN_ROOM_EVENTS_PER_SECOND`;
        0: not spaced)."""
        rate = self.warden_room_events_per_second
        return 1000.0 / rate if rate else 0.0

    @property
    def retention_seconds(self) -> float:
        """How long closed rooms and resolved incidents are kept (`WARDEN_RETENTION`), in seconds."""
        return parse_duration(self.warden_retention)

    def canaries(self) -> tuple[CanaryPolicy, ...]:
        """A canary per agent named in `WARDEN_CANARY_AGENTS` or by a rule with `canary = true`, every
        `WARDEN_CANARY_EVERY`, within `WARDEN_CANARY_SLA_SECONDS` (unset: the agent's join SLA)."""
        rules = self.rules().rules
        named = [a for a in self.warden_canary_agents.split(",") if a]
        named += [a for r in rules if r.canary for a in r.agents or ()]
        every, failures = parse_duration(self.warden_canary_every), self.warden_canary_failures
        policies = []
        for agent in dict.fromkeys(named):
            join_sla = next((r.join_sla for r in rules if r.agents and agent in r.agents), None)
            sla = self.warden_canary_sla_seconds or join_sla or self.warden_join_sla_seconds
            policies.append(CanaryPolicy(agent, every, sla, failures, self.warden_restart_grace_seconds))
        return tuple(policies)

    def reconcile_schedule(self) -> dict[str, set[int]]:
        """ARQ cron fields for running reconciliation every `WARDEN_RECONCILE_SECONDS`."""
        every = self.warden_reconcile_seconds
        if every < 60:
            return {"second": set(range(0, 60, every))}
        return {"minute": set(range(0, 60, every // 60)), "second": {0}}

    @property
    def discover_batch(self) -> int:
        """How many rooms one run of the `discover` cron looks at: `WARDEN_DISCOVER_CALLS_PER_SECOND`'s
        calls over the run's period, each look `CALLS_PER_LOOK` calls."""
        return int(self.warden_discover_calls_per_second * DISCOVER_TICK_SECONDS // CALLS_PER_LOOK)

    @property
    def liveness_batch(self) -> int:
        """How many rooms one run of the `liveness` cron looks at (one ListParticipants each):
        `WARDEN_LIVENESS_CALLS_PER_SECOND` over the run's period, at least one."""
        return max(1, int(self.warden_liveness_calls_per_second * LIVENESS_TICK_SECONDS))

    def arq_redis(self) -> RedisSettings:
        """ARQ's connection settings; `WARDEN_REDIS_TLS_VERIFY=false` for self-signed `rediss://` (Heroku)."""
        settings = RedisSettings.from_dsn(self.redis_url)
        if not self.warden_redis_tls_verify:
            settings.ssl_cert_reqs = "none"
        return settings

    def redis_pool_options(self) -> dict[str, object]:
        """redis-py pool options matching `arq_redis` (certificates are checked on rediss:// only)."""
        if self.redis_url.startswith("rediss://") and not self.warden_redis_tls_verify:
            return {"ssl_cert_reqs": "none"}
        return {}

    def primary_key(self) -> tuple[str, str]:
        """The key pair Warden signs its LiveKit calls with: LIVEKIT_API_KEY, else LIVEKIT_KEYS' first."""
        if self.livekit_api_key:
            return self.livekit_api_key, self.livekit_api_secret.get_secret_value()
        return next(iter(self.api_keys.items()))

    def require_livekit_url(self) -> None:
        """The worker talks to LiveKit; without its URL it cannot check rooms or re-dispatch."""
        if not self.livekit_url:
            raise SettingsError("LIVEKIT_URL: required by the worker to check rooms and re-dispatch agents")


def load_settings(**overrides: object) -> Settings:
    """Read and validate the settings; raise `SettingsError` naming the variable on a bad value."""
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise SettingsError(describe(exc)) from None
    settings.rule_list  # noqa: B018 - a bad rules file stops start-up here, like a bad variable
    return settings


def load_settings_or_exit(*, worker: bool = False) -> Settings:
    """For entry points: the settings, or a one-line message naming the variable and exit status 2."""
    try:
        settings = load_settings()
        if worker:
            settings.require_livekit_url()
        return settings
    except SettingsError as exc:
        print(f"warden: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None

"""The settings of canaries (README "Canaries"): which agents get one (`WARDEN_CANARY_AGENTS`, beside a
rule's `canary = true`), how often, within what SLA, and how many failures in a row are an outage. A
part of `workers.settings.Settings`; the policies are made by `Settings.canaries`."""

from __future__ import annotations

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings

from workers.setting_values import agent_names, check_every


class CanarySettings(BaseSettings):
    warden_canary_agents: str = ""
    warden_canary_every: str = "5m"
    warden_canary_sla_seconds: float | None = Field(default=None, gt=0, le=600)
    warden_canary_failures: int = Field(default=2, ge=1, le=100)

    @field_validator("warden_canary_every")
    @classmethod
    def _check_canary_every(cls, value: str) -> str:
        return check_every(value)

    @field_validator("warden_canary_agents")
    @classmethod
    def _check_canary_agents(cls, value: str) -> str:
        return agent_names(value)

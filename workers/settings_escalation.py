"""The settings of escalation (README "Escalation: outages"): when rooms' troubles are an outage, how its
incident restarts the agent (LiveKit Cloud, a deploy hook, a rollback) and where it alerts (Slack,
PagerDuty, Opsgenie, the incident webhook), with what cooldown, grace, lease and retries. A part of
`workers.settings.Settings`."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings

from workers.setting_values import URL_SCHEMES, check_http_url


class EscalationSettings(BaseSettings):
    warden_outage_rooms: int = Field(default=3, ge=1)
    warden_outage_window_seconds: float = Field(default=60.0, gt=0)
    warden_cloud_agent_id: str = ""
    lk_agents_url: str = ""
    warden_escalation: str = "restart"
    warden_deploy_hook_url: SecretStr = SecretStr("")
    warden_deploy_hook_secret: SecretStr = SecretStr("")
    warden_restart_cooldown_seconds: float = Field(default=300.0, ge=0)
    warden_restart_grace_seconds: float = Field(default=20.0, ge=0)
    warden_alert_webhook_url: SecretStr = SecretStr("")
    warden_pagerduty_routing_key: SecretStr = SecretStr("")
    warden_pagerduty_url: str = "https://events.pagerduty.com/v2/enqueue"
    warden_opsgenie_api_key: SecretStr = SecretStr("")
    warden_opsgenie_url: str = "https://api.opsgenie.com"
    warden_incident_webhook_url: SecretStr = SecretStr("")
    warden_incident_webhook_secret: SecretStr = SecretStr("")
    warden_escalation_backoff_seconds: float = Field(default=1.0, ge=0)
    warden_alert_retry_seconds: float = Field(default=600.0, gt=0)
    warden_claim_lease_seconds: float = Field(default=60.0, gt=0, le=3600)

    @field_validator("warden_cloud_agent_id")
    @classmethod
    def _check_agent_id(cls, value: str) -> str:
        if value and not value.startswith("CA_"):
            raise ValueError("LiveKit Cloud agent ids start with CA_")
        return value

    @field_validator("lk_agents_url")
    @classmethod
    def _check_agents_url(cls, value: str) -> str:
        if value and not value.startswith(URL_SCHEMES):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @field_validator("warden_escalation")
    @classmethod
    def _check_escalation(cls, value: str) -> str:
        steps = [s.strip() for s in value.split(",") if s.strip()]
        if not steps or any(s not in ("restart", "rollback") for s in steps) or "restart" not in steps:
            raise ValueError("must be 'restart' or 'restart,rollback'")
        return ",".join(steps)

    @field_validator("warden_deploy_hook_url", "warden_alert_webhook_url", "warden_incident_webhook_url")
    @classmethod
    def _check_hook_url(cls, value: SecretStr) -> SecretStr:
        if value.get_secret_value():
            check_http_url(value.get_secret_value())
        return value

    @field_validator("warden_pagerduty_url", "warden_opsgenie_url")
    @classmethod
    def _check_alert_api_url(cls, value: str) -> str:
        check_http_url(value)
        return value

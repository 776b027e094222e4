"""The settings for protecting the person while an agent cannot be brought back (issue 27): the
environment's defaults for the rules' `fallback_*` and `notify_room` keys (README: "Protecting the
person"). A part of `workers.settings.Settings`."""

from __future__ import annotations

from typing import Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings

from workers.setting_values import check_transfer_target


class FallbackSettings(BaseSettings):
    warden_fallback_agent: str = ""
    warden_fallback_after_seconds: float | None = Field(default=None, gt=0)  # unset: twice the join SLA
    warden_fallback_stays: bool = False
    warden_fallback_transfer_to: SecretStr = SecretStr("")  # personal data: never shown
    warden_notify_room: bool = False

    @field_validator("warden_fallback_transfer_to")
    @classmethod
    def _check_transfer_to(cls, value: SecretStr) -> SecretStr:
        if value.get_secret_value():
            check_transfer_target(value.get_secret_value())
        return value

    def fallback_policy(self) -> dict[str, Any]:
        """The `Policy` fields these settings give."""
        return {
            "fallback_agent": self.warden_fallback_agent.strip(),
            "fallback_after": self.warden_fallback_after_seconds,
            "fallback_stays": self.warden_fallback_stays,
            "fallback_transfer_to": self.warden_fallback_transfer_to.get_secret_value(),
            "notify_room": self.warden_notify_room,
        }

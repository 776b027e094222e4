"""Warden's mode (issue 28): `WARDEN_MODE=act` (the default) carries out what Warden decides;
`WARDEN_MODE=observe` decides the same and changes nothing (README: "Modes"); `WARDEN_OBSERVE_ALERTS`
lets alerts go out in observe mode, marked as from it. A part of `workers.settings.Settings`."""

from __future__ import annotations

from typing import Literal

from pydantic import field_validator
from pydantic_settings import BaseSettings

ACT, OBSERVE = "act", "observe"


class ModeSettings(BaseSettings):
    warden_mode: Literal["act", "observe"] = "act"
    warden_observe_alerts: bool = False

    @field_validator("warden_mode", mode="before")
    @classmethod
    def _check_mode(cls, value: object) -> object:
        text = value.strip().lower() if isinstance(value, str) else value
        if text not in (ACT, OBSERVE):
            raise ValueError("must be act or observe")
        return text

    @property
    def observing(self) -> bool:
        """Observe mode: decide and record as in act, carry nothing out."""
        return self.warden_mode == OBSERVE

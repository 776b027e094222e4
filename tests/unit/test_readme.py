"""The README's state diagram is the one the table draws today."""

from __future__ import annotations

import re

from tests.support.processes import ROOT
from workers.core.diagram import mermaid


def test_readme_state_diagram_matches_the_table() -> None:
    readme = (ROOT / "README.md").read_text()
    found = re.search(r"<!-- diagram:start -->\n```mermaid\n(.*?)\n```\n<!-- diagram:end -->", readme, re.S)
    assert found, "README.md has lost its diagram markers"
    assert found.group(1) == mermaid(), "README diagram is stale: run `make diagram`"


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

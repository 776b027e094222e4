"""The README's state diagram is the one the table draws today."""

from __future__ import annotations

import re

from tests.processes import ROOT
from workers.diagram import mermaid


def test_readme_state_diagram_matches_the_table() -> None:
    readme = (ROOT / "README.md").read_text()
    found = re.search(r"<!-- diagram:start -->\n```mermaid\n(.*?)\n```\n<!-- diagram:end -->", readme, re.S)
    assert found, "README.md has lost its diagram markers"
    assert found.group(1) == mermaid(), "README diagram is stale: run `make diagram`"

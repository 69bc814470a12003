"""The docs say what the code does: the fleet.yaml support table matches the parser."""

from __future__ import annotations

import re
from pathlib import Path

from controller import fleetyaml

DOCS = Path(__file__).resolve().parent.parent / "docs"


def _documented() -> dict[str, str]:
    table: dict[str, str] = {}
    for line in (DOCS / "bundles.md").read_text().splitlines():
        match = re.match(r"\| `([\w.]+)`[^|]* \|[^|]*\| (supported|kept|warned) \|$", line)
        if match:
            table[match.group(1)] = match.group(2)
    return table


def test_fleet_yaml_support_table_matches_the_parser() -> None:
    expected = {key: status.value for key, status in fleetyaml.TOP_KEYS.items()}
    expected |= {
        key: status.value for key, status in fleetyaml.TARGET_CUSTOMIZATION_KEYS.items() if key != "name"
    }
    expected |= {f"helm.{key}": status.value for key, status in fleetyaml.HELM_KEYS.items()}
    assert _documented() == expected

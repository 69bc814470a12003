"""The docs say what the code does: the fleet.yaml support table matches the parser, and
the rights table of docs/security.md matches wire.rights."""

from __future__ import annotations

import re
from pathlib import Path

from controller import fleetyaml
from wire import rights, topics

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


def _rights_rows() -> dict[str, tuple[set[str], set[str]]]:
    text = (DOCS / "security.md").read_text()
    table = text.split("<!-- rights-table")[1].split("<!-- /rights-table -->")[0]
    rows: dict[str, tuple[set[str], set[str]]] = {}
    for line in table.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0] in {role.value for role in rights.Role}:
            rows[cells[0]] = tuple(set(re.findall(r"`([^`]+)`", cell)) for cell in cells[1:])  # type: ignore[assignment]
    return rows


def test_security_rights_table_matches_wire_rights() -> None:
    space = topics.Topics()
    principals = {
        rights.Role.CONTROLLER: rights.Principal(rights.Role.CONTROLLER, "c"),
        rights.Role.BOOTSTRAP: rights.Principal(rights.Role.BOOTSTRAP, "b", client_id="join-1"),
        rights.Role.CLUSTER: rights.Principal(rights.Role.CLUSTER, "k", name="pi-1", root="edge/west"),
    }
    fill = {"<prefix>": "fleet", "<client-id>": "join-1", "<root>": "edge/west", "<name>": "pi-1"}

    def concrete(patterns: set[str]) -> set[str]:
        out = set()
        for pattern in patterns:
            for placeholder, value in fill.items():
                pattern = pattern.replace(placeholder, value)
            out.add(pattern)
        return out

    documented = _rights_rows()
    assert set(documented) == {role.value for role in rights.Role}
    for role, principal in principals.items():
        granted = rights.rules(principal, space)
        publish, subscribe = documented[role.value]
        assert concrete(publish) == set(granted.publish), role
        assert concrete(subscribe) == set(granted.subscribe), role

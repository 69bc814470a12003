"""The package boundaries of DESIGN.md, checked on every import statement.

    wire        imports no project package
    edge_agent  never imports controller or broker (the device installs neither)
    broker      never imports controller or edge_agent
    controller  never imports edge_agent
    kubernetes  is imported only by the agent's applying module
    amqtt       is imported only under broker/

Direct imports are enough: every module is checked, so a forbidden chain must
contain a forbidden direct import somewhere.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGES = ("wire", "edge_agent", "controller", "broker")
FORBIDDEN_PACKAGES = {
    "wire": {"edge_agent", "controller", "broker", "firmware_images", "tests"},
    "edge_agent": {"controller", "broker", "tests"},
    "broker": {"controller", "edge_agent", "tests"},
    "controller": {"edge_agent", "tests"},
}
# third-party package -> the only modules allowed to import it
CONFINED = {
    "kubernetes": lambda module: module == "edge_agent.applying",
    "amqtt": lambda module: module == "broker" or module.startswith("broker."),
}


def _imports(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """Absolute imports only: our packages are top-level, so a relative import
    cannot leave the package it is written in."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module


def violations(root: Path) -> list[str]:
    found = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            relative = path.relative_to(root).with_suffix("")
            parts = list(relative.parts)
            if parts[-1] == "__init__":
                parts.pop()
            module = ".".join(parts)
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for lineno, imported in _imports(tree):
                top = imported.split(".", 1)[0]
                where = f"{path.relative_to(root)}:{lineno}"
                if top in FORBIDDEN_PACKAGES[package]:
                    found.append(f"{where}: {package} must not import {imported}")
                allowed = CONFINED.get(top)
                if allowed is not None and not allowed(module):
                    found.append(f"{where}: only {_owner(top)} may import {top}, not {module}")
    return found


def _owner(top: str) -> str:
    return {"kubernetes": "edge_agent.applying", "amqtt": "broker/"}[top]


def test_project_respects_its_boundaries(repo_root: Path) -> None:
    assert violations(repo_root) == []


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for package in PACKAGES:
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    return tmp_path


def test_detects_agent_importing_controller(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"edge_agent/run.py": "from controller import publishing\n"})
    assert violations(root) == ["edge_agent/run.py:1: edge_agent must not import controller"]


def test_detects_wire_importing_any_project_package(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"wire/x.py": "import broker.embedded\nfrom edge_agent.cli import main\n"})
    assert len(violations(root)) == 2


def test_detects_kubernetes_outside_applying_and_amqtt_outside_broker(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "edge_agent/applying.py": "import kubernetes.client\n",
            "edge_agent/status.py": "from kubernetes import client\n",
            "controller/server.py": "import amqtt.broker\n",
            "broker/embedded.py": "from amqtt.broker import Broker\n",
        },
    )
    assert sorted(violations(root)) == [
        "controller/server.py:1: only broker/ may import amqtt, not controller.server",
        "edge_agent/status.py:1: only edge_agent.applying may import kubernetes, not edge_agent.status",
    ]


def test_detects_imports_nested_inside_functions(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"edge_agent/x.py": "def f():\n    import broker.embedded\n"})
    assert violations(root) == ["edge_agent/x.py:2: edge_agent must not import broker.embedded"]


def test_the_agent_loop_and_simulator_do_not_load_the_kubernetes_client() -> None:
    import subprocess
    import sys

    code = "import sys, edge_agent.agent, edge_agent.simulation, edge_agent.cli; print('kubernetes' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"  # ~20 MiB that simulated agents and `verify` do not need

"""YAML loading that cannot be turned against the controller, with Kubernetes' typing.

PyYAML's safe loader refuses arbitrary Python objects, but aliases still let a
few hundred bytes describe an exponentially large value (the "billion
laughs"): the loader shares nodes and the first walk over the result expands
them. So each input's node graph is measured *as expanded*, across all its
documents, before anything is constructed, stopping as soon as it passes the
budget.

Values end up the way Kubernetes reads YAML (by way of JSON): timestamps
stay strings, map keys become strings (their literal text), and anything JSON
cannot hold (binary, sets, integers past 64 bits, nesting past the limit,
unpaired surrogates) is refused with a message naming the input.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from controller import errors, sandbox
from wire import canonical
from wire import errors as wire_errors

# Nodes of one input, all documents together, counted with every alias
# expanded. The largest real CRD bundles have ~10^5; a billion laughs has 10^9.
MAX_EXPANDED_NODES = 1_000_000


class _Loader(yaml.SafeLoader):
    """Safe loading, typed as Kubernetes types YAML."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            self.flatten_mapping(node)
            for index, (key_node, value_node) in enumerate(node.value):
                if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:str":
                    # JSON keys are strings: keep the key's literal text (`1: a` -> "1").
                    node.value[index] = (yaml.ScalarNode("tag:yaml.org,2002:str", key_node.value), value_node)
        return super().construct_mapping(node, deep=deep)


# Timestamps are strings to Kubernetes (creationTimestamp: 2024-01-02T03:04:05Z).
_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _expanded_size(root: yaml.Node, budget: int) -> int:
    """Count nodes as if aliases were copies; stop early once over `budget`."""
    count = 0
    stack: list[yaml.Node] = [root]
    while stack:
        node = stack.pop()
        count += 1
        if count > budget:
            return count
        if isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
        elif isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                stack.append(key)
                stack.append(value)
    return count


def _json_shaped(document: Any, source: str, index: int) -> Any:
    try:
        normalized = canonical.normalize(document)
        json.dumps(normalized, ensure_ascii=False).encode("utf-8")
    except wire_errors.WireError as exc:
        raise errors.BundleError(f"{source}: document {index}: {exc}") from exc
    except (UnicodeEncodeError, ValueError, TypeError) as exc:
        raise errors.BundleError(f"{source}: document {index}: not representable as JSON: {exc}") from exc
    return document


def load_all(data: bytes | str, *, source: str) -> list[Any]:
    """Every document of `data`; BundleError naming `source` when it is not safe, JSON-shaped YAML."""
    if len(data) > sandbox.MAX_FILE_BYTES:
        raise errors.BundleError(f"{source}: {len(data)} bytes, over the {sandbox.MAX_FILE_BYTES}-byte limit")
    loader = _Loader(data)
    budget = MAX_EXPANDED_NODES
    try:
        documents: list[Any] = []
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            budget -= _expanded_size(node, budget)
            if budget < 0:
                raise errors.BundleError(
                    f"{source}: expands past {MAX_EXPANDED_NODES} nodes through YAML aliases "
                    "(a 'billion laughs' document?); refused"
                )
            documents.append(_json_shaped(loader.construct_document(node), source, len(documents) + 1))
        return documents
    except yaml.YAMLError as exc:
        raise errors.BundleError(f"{source}: not valid YAML: {exc}") from exc
    except (UnicodeDecodeError, RecursionError) as exc:
        raise errors.BundleError(f"{source}: not readable YAML: {exc}") from exc
    finally:
        loader.dispose()


def load_file(path: Path, *, source: str) -> list[Any]:
    return load_all(sandbox.read(path, source=source), source=source)

"""YAML loading that cannot be turned against the controller.

PyYAML's safe loader already refuses arbitrary Python objects, but aliases
still let a few hundred bytes describe an exponentially large document (the
"billion laughs"): the loader shares the nodes, and the first thing that
walks the result (hashing, encoding) expands it. So every document's node
graph is measured *as expanded* before it is constructed, with the walk
stopping as soon as it passes the budget, and inputs are size-capped first.
"""

from __future__ import annotations

from typing import Any

import yaml

from controller import errors

# One YAML input (a manifest file, a values file, rendered output): far above
# any real manifest (Kubernetes caps objects near 1.5 MiB), far below memory trouble.
MAX_INPUT_BYTES = 32 * 1024 * 1024

# Nodes of one document counted with every alias expanded. The largest real
# CRD bundles have ~10^5 nodes; a billion-laughs document has 10^9.
MAX_EXPANDED_NODES = 1_000_000


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


def load_all(data: bytes | str, *, source: str) -> list[Any]:
    """Every document of `data`; BundleError naming `source` when it is not safe, valid YAML."""
    if len(data) > MAX_INPUT_BYTES:
        raise errors.BundleError(
            f"{source}: {len(data)} bytes, over the {MAX_INPUT_BYTES}-byte limit for YAML"
        )
    loader = yaml.SafeLoader(data)
    try:
        documents: list[Any] = []
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            if _expanded_size(node, MAX_EXPANDED_NODES) > MAX_EXPANDED_NODES:
                raise errors.BundleError(
                    f"{source}: document {len(documents) + 1} expands past {MAX_EXPANDED_NODES} nodes "
                    "through YAML aliases (a 'billion laughs' document?); refused"
                )
            documents.append(loader.construct_document(node))
        return documents
    except yaml.YAMLError as exc:
        raise errors.BundleError(f"{source}: not valid YAML: {exc}") from exc
    except (UnicodeDecodeError, RecursionError) as exc:
        raise errors.BundleError(f"{source}: not readable YAML: {exc}") from exc
    finally:
        loader.dispose()

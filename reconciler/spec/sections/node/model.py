"""The `runtime.node` section's model: the node the gateways run.

Written as a range (`node: ">=22.12"`: the node on the user's PATH must satisfy it; checked,
never installed) or as a mapping with an exact `version` (`node: {version: 24.21.0}`: the
reconciler installs that node side by side under `~/.local/lib/node/<version>/`, from the npm
registry's `node` package, and every unit runs it). A profile's own `node:` (an exact version,
a canary) overrides either for that profile (reconciler/gateway/node.py).
"""

from __future__ import annotations

from typing import Any

from reconciler.frozen import frozen

# Where the section is, in the document and in the typed Spec (the same names).
MOUNT = ("runtime", "node")
# Where installed nodes live, one directory per version (reconciler/gateway/node.py), under the
# spec user's home: always the user's, installed as the user.
NODE_PREFIX = "~/.local/lib/node"


@frozen
class Node:
    """`range`: what the host's node must satisfy (the range form; None: not checked);
    `version`: the node installed and run (the mapping form; None: the host's node);
    `keep`: previous installed nodes kept besides those a profile runs or wants."""

    range: str | None = None
    version: str | None = None
    keep: int = 1


def build(section: str | dict[str, Any] | None) -> Node:
    """Validated `runtime.node` data (absent, a range, or a mapping) -> Node."""
    if section is None:
        return Node()
    if isinstance(section, str):
        return Node(range=section)
    return Node(**{k: section[k] for k in ("version", "keep") if k in section})

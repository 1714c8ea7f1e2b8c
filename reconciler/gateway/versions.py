"""Versioned gateway installs: where each version lives, what is installed there, and what runs it.

Pure: every path is known from the spec and the user's home before anything is installed, so a
plan can name the unit's `ExecStart` of a version that is not there yet (no "second pass after
install"). Layout (docs/updates.md):

    <prefix>/<version>/package.json                     written by us (package_json)
    <prefix>/<version>/node_modules/<package>/<bin>     the entry point the unit runs with node
    <prefix>/<version>/.reconciler-installed            written last, before the rename into place
    <prefix>/.install-<version>-<random>/               an install in progress (or a killed one)

Versioned installs are on with `runtime.gateway.install: versioned` and a pinned version
(`runtime.gateway.version` or a profile's `gateway_version`; validation asks for one and refuses
`runtime.gateway.command`, "a gateway we do not install, only check"). The default, `global`, is
the older `npm install -g` of the runtime kind: the default flips once the health-gated switch
(docs/updates.md) guards the first move of every pinned host's units.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from reconciler.spec.model import Profile, Spec
from reconciler.spec.naming import package_product, product_names

# The product's convention; `~` is the spec user's home.
DEFAULT_PREFIX = "~/.local/lib/{product}"
# Written into a version's directory after its check passed, before the rename into place: a
# version directory without it is never run.
MARKER = ".reconciler-installed"
TEMP_PREFIX = ".install-"
REMOVE_PREFIX = ".remove-"
# `.install-<version>-<random>`: the random part is hex (install_temp_name).
_TEMP_NAME = re.compile(r"^\.install-(?P<version>.+)-(?P<token>[0-9a-f]{8,32})$")

# npm's exact versions, as the schema's `version` definition (no `/`, never `.` or `..`).
_VERSION = re.compile(
    r"^(?:0|[1-9]\d*)\.(?:0|[1-9]\d*)\.(?:0|[1-9]\d*)"
    r"(?:-[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$"
)


def is_version(name: str) -> bool:
    """True when `name` is an exact version, so a directory of that name may be an install."""
    return bool(_VERSION.match(name))


def versioned(spec: Spec) -> bool:
    """True when the reconciler installs the gateway side by side (opted in, a pin, no `command`)."""
    gateway = spec.runtime.gateway
    if gateway.install != "versioned" or gateway.command is not None:
        return False
    return bool(wanted_versions(spec))


def profile_version(spec: Spec, profile: Profile) -> str | None:
    """The version `profile` wants: its own `gateway_version`, else `runtime.gateway.version`."""
    return profile.gateway_version or spec.runtime.gateway.version


def wanted_versions(spec: Spec) -> tuple[str, ...]:
    """Every version some profile wants, each once, in profile order."""
    found = (profile_version(spec, p) for p in spec.profiles)
    return tuple(dict.fromkeys(v for v in found if v is not None))


def prefix_text(spec: Spec) -> str:
    """`runtime.gateway.prefix` as written, or the product's default (`~/.local/lib/<product>`)."""
    return spec.runtime.gateway.prefix or DEFAULT_PREFIX.format(product=spec.product)


def user_owned(spec: Spec) -> bool:
    """True when the prefix is under the user's home (the user's, installed as the user); an
    absolute prefix is root's (validated to lie in host.data_roots), installed as root."""
    return prefix_text(spec).startswith("~/")


def prefix_path(spec: Spec, home: Path) -> Path:
    """The prefix, resolved against the spec user's home."""
    text = prefix_text(spec)
    return home / text[2:] if text.startswith("~/") else Path(text)


def install_dir(prefix: Path, version: str) -> Path:
    """`<prefix>/<version>/`: one version's own npm prefix."""
    if not is_version(version):
        raise ValueError(f"not an exact version: {version!r}")
    return prefix / version


def package_dir(spec: Spec, root: Path) -> Path:
    """The installed gateway package inside a version's directory (or a temporary one)."""
    return root / "node_modules" / spec.runtime.gateway.package


def entry_relative(spec: Spec) -> str:
    """The entry point relative to a version's directory.

    It follows the installed package, not the spec's product: a product's own package runs
    its `bin` target (docs/host-facts.md §1; `openclaw.mjs` whatever `product` says, so the
    version check asks the package that is there). Another package (a fork named in
    `runtime.gateway.package`): npm's link for the product's command, whose target node follows.
    """
    package = spec.runtime.gateway.package
    owner = package_product(package)
    if owner is not None:
        return f"node_modules/{package}/{product_names(owner).bin_path}"
    return f"node_modules/.bin/{product_names(spec.product).command}"


def entry_point(spec: Spec, prefix: Path, version: str) -> Path:
    """What the unit runs with node for `version`: `<prefix>/<version>/node_modules/<pkg>/<bin>`."""
    return install_dir(prefix, version) / entry_relative(spec)


def package_json(spec: Spec, version: str) -> str:
    """The package.json of a version's directory: deterministic (sorted keys, fixed layout).

    dependencies = the gateway pinned exactly, plus `runtime.gateway.extra` (the gateway's own
    entry wins over an extra of the same name); overrides = `runtime.gateway.overrides`.
    """
    gateway = spec.runtime.gateway
    dependencies = {**dict(gateway.extra), gateway.package: version}
    document: dict[str, object] = {
        "name": f"reconciler-{spec.product}-gateway",
        "version": "0.0.0",
        "private": True,
        "description": "Written by reconciler: one gateway version's npm prefix",
        "dependencies": dict(sorted(dependencies.items())),
    }
    if gateway.overrides:
        document["overrides"] = dict(gateway.overrides)
    return json.dumps(document, indent=2, sort_keys=False) + "\n"


def install_temp_name(version: str, token: str) -> str:
    """`.install-<version>-<token>`: where an install runs before it is renamed into place."""
    return f"{TEMP_PREFIX}{version}-{token}"


def temp_version(name: str) -> str | None:
    """The version an install temp directory was for, None when `name` is not one."""
    match = _TEMP_NAME.match(name)
    return match.group("version") if match else None


def version_in_exec(exec_start: str, prefix: Path) -> str | None:
    """Which installed version a unit's ExecStart runs: the `<prefix>/<version>/` it names."""
    root = str(prefix).rstrip("/") + "/"
    for word in exec_start.replace('"', " ").split():
        if word.startswith(root):
            version = word[len(root) :].split("/", 1)[0]
            if is_version(version):
                return version
    return None

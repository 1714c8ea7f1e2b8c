"""Semantic rules: what the schema cannot say (unique ports, references between sections, ...).

Each rule is a small function from the parsed document to issues (reconciler/spec/rules.py).
Here: the rules of the spine (host, product, profiles) and of runtime.gateway, and the
document-wide ones (durations, control characters, YAML 1.1 words); a section a kind owns keeps
its rules beside its model (sections/<name>/rules.py), and `check` runs them all. Rules run even
when the schema found errors (so a user sees everything at once), so they read the data
defensively: anything of the wrong shape is the schema's business and is skipped here.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterator
from typing import Any

from reconciler.spec import sections
from reconciler.spec.duration import parse_duration
from reconciler.spec.naming import PRODUCTS, package_product, product_names
from reconciler.spec.rules import BROAD_DIRS, Issue, Rule, user_name
from reconciler.spec.rules import as_int as _as_int
from reconciler.spec.rules import canonical as _canonical
from reconciler.spec.rules import get as _get
from reconciler.spec.rules import inside as _inside
from reconciler.spec.rules import names as _names
from reconciler.spec.rules import profiles as _profiles
from reconciler.spec.rules import system_dir as _system_dir
from reconciler.spec.schema import pattern
from reconciler.spec.yaml_source import YAML11_BOOLS, Document, PathT, show

MIN_PORT_GAP = 20  # the gateway derives ports from its base (docs/host-facts.md §1)

# (path, may it be zero?) of every duration field of the core sections (a section adds its own).
DURATIONS: tuple[tuple[tuple[str, ...], bool], ...] = (
    (("runtime", "gateway", "start_timeout"), False),
    (("runtime", "gateway", "health_window"), True),
)


# --- defensive accessors ----------------------------------------------------------------------


def _ports(doc: Document) -> list[tuple[str, int]]:
    """(profile, port) for every profile whose port is a usable integer, in file order."""
    out = []
    for name, body in _profiles(doc).items():
        port = _as_int(_get(body, "port"))
        if port is not None and 1 <= port <= 65535:
            out.append((name, port))
    return out


# --- rules ------------------------------------------------------------------------------------


def profile_names(doc: Document) -> Iterator[Issue]:
    """Profile names are short lowercase identifiers (they end up in unit and directory names)."""
    regex = re.compile(pattern("profileName"))
    for name in _profiles(doc):
        if not regex.fullmatch(name):
            yield Issue(
                ("profiles", name),
                f"invalid profile name {show(name)}",
                "a profile name starts with a lowercase letter, then lowercase letters, digits or "
                "hyphens, at most 32 characters (it becomes part of unit and directory names)",
                at_key=True,
            )


def user_names(doc: Document) -> Iterator[Issue]:
    """host.user and host.ssh.user are POSIX user names (the SSH login goes into ssh's argv and
    a remote shell line: `root;id` must never get that far); tailscale.operator is its
    section's."""
    for path in (("host", "user"), ("host", "ssh", "user")):
        yield from user_name(doc, path)


def unique_ports(doc: Document) -> Iterator[Issue]:
    """No two profiles share a gateway port."""
    seen: dict[int, str] = {}
    for name, port in _ports(doc):
        if port in seen:
            yield Issue(
                ("profiles", name, "port"),
                f"port {port} is already used by profile {show(seen[port])}",
                "every profile needs its own gateway port",
            )
        else:
            seen[port] = name


def port_spacing(doc: Document) -> Iterator[Issue]:
    """Base ports of two profiles are at least MIN_PORT_GAP apart."""
    ports = _ports(doc)
    for i, (name, port) in enumerate(ports):
        for other, other_port in ports[:i]:
            gap = abs(port - other_port)
            if 0 < gap < MIN_PORT_GAP:
                free = _free_port(other_port, [p for n, p in ports if n != name])
                example = f", e.g. port: {free}" if free is not None else ""
                yield Issue(
                    ("profiles", name, "port"),
                    f"port {port} is only {gap} away from port {other_port} of profile {show(other)}",
                    "the gateway derives more ports from its base port (e.g. base+2 for browser "
                    f"control); keep the base ports of two profiles at least {MIN_PORT_GAP} apart"
                    f"{example}",
                )


def _free_port(start: int, taken: list[int]) -> int | None:
    """The lowest port at least MIN_PORT_GAP above `start` and that far from all `taken`."""
    candidate = start + MIN_PORT_GAP
    while candidate <= 65535:
        clash = [p for p in taken if abs(candidate - p) < MIN_PORT_GAP]
        if not clash:
            return candidate
        candidate = max(clash) + MIN_PORT_GAP
    return None


def durations(doc: Document) -> Iterator[Issue]:
    """Durations parse, and are longer than zero (randomized_delay may be 0)."""
    for path, zero_ok in (*DURATIONS, *sections.durations()):
        value = _get(doc.data, *path)
        if isinstance(value, str):
            try:
                seconds = parse_duration(value)
            except ValueError as exc:
                yield Issue(path, str(exc))
                continue
        elif _as_int(value) is not None:
            seconds = int(value)
        else:
            continue
        if seconds < 0 or (seconds == 0 and not zero_ok):
            yield Issue(
                path,
                f"{show(value)} is not a positive duration",
                "write a duration longer than zero, like 30s, 15min or 1h",
            )


def state_dirs(doc: Document) -> Iterator[Issue]:
    """Two profiles never share a state directory (explicit, or the product's convention)."""
    names = _names(doc)
    profiles = _profiles(doc)
    owner: dict[str, str] = {}
    for name, body in profiles.items():
        if not isinstance(_get(body, "state_dir"), str):
            owner.setdefault(names.state_dir(name), name)
    for name, body in profiles.items():
        state_dir = _get(body, "state_dir")
        if not isinstance(state_dir, str):
            continue
        first = owner.setdefault(state_dir.rstrip("/") or "/", name)
        if first != name:
            yield Issue(
                ("profiles", name, "state_dir"),
                f"{show(state_dir)} is also the state directory of profile {show(first)}",
                "every profile needs its own state directory",
            )


PATH_HINT = (
    "write a path inside the user's home (~/...), or inside a directory listed under "
    "host.data_roots (e.g. data_roots: [/srv/clawd] and state_dir: /srv/clawd/ops); the "
    "user's own home is written ~/, never /home/NAME"
)


def _data_roots(doc: Document) -> list[tuple[int, str]]:
    roots = _get(doc.data, "host", "data_roots")
    if not isinstance(roots, list):
        return []
    return [(i, r) for i, r in enumerate(roots) if isinstance(r, str) and r.startswith("/")]


def data_roots(doc: Document) -> Iterator[Issue]:
    """host.data_roots: absolute, no `..`, neither a system directory nor a whole top level."""
    for i, root in _data_roots(doc):
        path = ("host", "data_roots", i)
        norm = posixpath.normpath(root)
        if ".." in root.split("/"):
            yield Issue(path, f"{show(root)} has a `..` component", "write the path without `..`")
        elif _system_dir(norm):
            yield Issue(
                path,
                f"{show(root)} is a system directory (or inside {_system_dir(norm)}); "
                "a spec may not own it",
                "list a directory of its own, like /srv/clawd",
            )
        elif norm in BROAD_DIRS:
            yield Issue(
                path,
                f"{show(root)} is too broad to be a data root",
                f"list a directory of its own inside it, like {norm.rstrip('/')}/clawd",
            )


def owned_paths(doc: Document) -> Iterator[Issue]:
    """state_dir and workspace lie inside the user's home or inside a host.data_roots entry.

    Root creates these directories and (for the state root) fixes their mode: a spec naming
    `/etc`, another user's home or `~/../..` would turn root against the machine.
    """
    roots = [posixpath.normpath(r) for _, r in _data_roots(doc)]
    for name, body in _profiles(doc).items():
        for key in ("state_dir", "workspace"):
            value = _get(body, key)
            if isinstance(value, str):
                problem = _path_problem(value, roots)
                if problem:
                    yield Issue(("profiles", name, key), f"{show(value)} {problem}", PATH_HINT)


def _path_problem(value: str, roots: list[str]) -> str | None:
    if not value.startswith(("/", "~/")):
        return None  # the schema's error
    if ".." in value.split("/"):
        return "has a `..` component (it could lead somewhere else than it seems to)"
    if value.startswith("~/"):
        if posixpath.normpath(value[2:]) == ".":
            return "is the home itself, not a directory inside it"
        return None
    norm = posixpath.normpath(value)
    system = _system_dir(norm)
    if system:
        return f"is inside the system directory {system}"
    if not any(_inside(norm, r) and norm != r for r in roots):
        return "is outside the user's home and outside every host.data_roots entry"
    return None


PREFIX_HINT = (
    "leave runtime.gateway.prefix out (~/.local/lib/<product>, the user's), write one inside the "
    "user's home (~/...), or list a root-owned directory under host.data_roots and name it "
    "(e.g. data_roots: [/opt/clawdbot] and prefix: /opt/clawdbot)"
)


def gateway_prefix(doc: Document) -> Iterator[Issue]:
    """runtime.gateway.prefix: in the user's home, or inside (or equal to) a host.data_roots entry;
    never a profile's state or workspace, nor a directory holding one.

    Versions are installed and pruned there (as root for an absolute prefix): the same rules
    as every other path root writes for the spec.
    """
    value = _get(doc.data, "runtime", "gateway", "prefix")
    if not isinstance(value, str) or not value.startswith(("/", "~/")):
        return  # absent, null, or the schema's error
    path = ("runtime", "gateway", "prefix")
    roots = [posixpath.normpath(r) for _, r in _data_roots(doc)]
    norm = posixpath.normpath(value)
    if value.startswith("/") and norm in roots and not _system_dir(norm):
        problem = None  # a data root the spec lists may be the prefix itself
    else:
        problem = _path_problem(value, roots)
    if problem:
        yield Issue(path, f"{show(value)} {problem}", PREFIX_HINT)
        return
    names = _names(doc)
    for name, body in _profiles(doc).items():
        conventions = {"state_dir": names.state_dir(name), "workspace": names.workspace(name)}
        for key, convention in conventions.items():
            other = _get(body, key)
            other = other if isinstance(other, str) else convention
            if not other.startswith(("/", "~/")):
                continue
            other_norm = posixpath.normpath(other)
            if _inside(norm, other_norm) or _inside(other_norm, norm):
                yield Issue(
                    path,
                    f"{show(value)} overlaps the {key} of profile {show(name)} ({show(other)})",
                    "give gateway versions a directory of their own",
                )


def versioned_install(doc: Document) -> Iterator[Issue]:
    """What only a versioned install can do needs `install: versioned` (and no `command`):
    per-profile versions, overrides, extra dependencies; and a versioned install needs a pin."""
    gateway = _get(doc.data, "runtime", "gateway")
    gateway = gateway if isinstance(gateway, dict) else {}
    versioned = gateway.get("install") == "versioned"
    command = gateway.get("command")
    pinned = [
        name
        for name, body in _profiles(doc).items()
        if isinstance(_get(body, "gateway_version"), str)
    ]
    if versioned and isinstance(command, str):
        yield Issue(
            ("runtime", "gateway", "install"),
            "install: versioned installs the gateway, but runtime.gateway.command names one "
            "the reconciler does not install",
            "drop runtime.gateway.command, or drop install: versioned",
        )
    elif versioned and not isinstance(gateway.get("version"), str) and not pinned:
        yield Issue(
            ("runtime", "gateway", "install"),
            "install: versioned needs a version to install",
            'pin one: runtime.gateway.version: "2026.1.24-3" (or a profile\'s gateway_version)',
        )
    needs = "needs runtime.gateway.install: versioned (one npm prefix per version)"
    if not versioned:
        for name in pinned:
            yield Issue(
                ("profiles", name, "gateway_version"),
                f"profile {show(name)} pins its own gateway version, which {needs}",
                "set runtime.gateway.install: versioned (without runtime.gateway.command)",
            )
        for key in ("overrides", "extra"):
            if gateway.get(key):
                yield Issue(
                    ("runtime", "gateway", key),
                    f"{key} {needs}: a global install has no package.json",
                    "set runtime.gateway.install: versioned",
                )


def product_package(doc: Document) -> Iterator[Issue]:
    """`runtime.gateway.package` naming another product's own package cannot work: the units,
    env files and checks use the spec's product's names (`CLAWDBOT_*`, `~/.clawdbot*`), which
    the other product does not read (openclaw ignores every `CLAWDBOT_*` variable; clawdbot
    never read `OPENCLAW_*`): docs/host-facts.md §8, docs/updates.md. A fork's package is fine."""
    product = _get(doc.data, "product")
    package = _get(doc.data, "runtime", "gateway", "package")
    if not isinstance(product, str) or product not in PRODUCTS or not isinstance(package, str):
        return
    owner = package_product(package)
    if owner is None or owner == product:
        return
    names, theirs = product_names(product), product_names(owner)
    yield Issue(
        ("runtime", "gateway", "package"),
        f"product {show(product)} with package {show(package)} cannot work: the units and "
        f"checks use {product}'s names ({names.env_prefix}* variables, ~/.{names.state_prefix} "
        f"state, {names.config_file}), and {package} reads only its own "
        f"({theirs.env_prefix}*, ~/.{theirs.state_prefix}, {theirs.config_file})",
        f"set product: {owner}, or package: {names.package}",
    )


# Characters that end or reorder a line on a terminal besides the C0/C1 controls: a path holding
# one can print as two lines of a plan (`+ExecStartPre=/bin/id` appearing as a line of the unit
# diff) or show its characters in another order than they run.
_LINE_BREAKERS = {
    "\u2028": "the line separator",
    "\u2029": "the paragraph separator",
    **dict.fromkeys("\u200e\u200f\u202a\u202b\u202c\u202d\u202e", "the bidirectional control"),
    **dict.fromkeys("\u2066\u2067\u2068\u2069", "the bidirectional control"),
}


def _refused(c: str) -> str | None:
    code = ord(c)
    if code < 0x20 or 0x7F <= code <= 0x9F:  # C0, DEL, C1 (U+0085 is NEL, a line break)
        return "the control character"
    return _LINE_BREAKERS.get(c)


def control_characters(doc: Document) -> Iterator[Issue]:
    """No string holds a control character, line/paragraph separator or bidi control (a stray
    line break from a block scalar, a tab, U+2028 spoofing an extra line in a plan, ...)."""
    for path, text, is_key in _strings(doc.data, ()):
        bad = next((c for c in text if _refused(c) is not None), None)
        if bad is not None:
            yield Issue(
                path,
                f"{'the key' if is_key else 'the value'} contains {_refused(bad)} U+{ord(bad):04X}",
                "remove it (a `|` or `>` block scalar keeps its final line break: use `|-`, or "
                "write the value on one line)"
                if bad == "\n"
                else "remove it",
                at_key=is_key,
            )


def yaml11_booleans(doc: Document) -> Iterator[Issue]:
    """A bare yes/no/on/off/y/n used as text: YAML 1.1 tools (and people) read it as a boolean."""
    for path, text in doc.plain.items():
        if text in YAML11_BOOLS and _lookup(doc.data, path) == text:
            yield Issue(
                path,
                f"the bare word {text} is ambiguous: YAML 1.1 tools read it as a boolean",
                f'quote it to mean the text: "{text}"',
            )
    for path, text in doc.bool_word_keys.items():
        yield Issue(
            path,
            f"the bare key {text} is ambiguous: YAML 1.1 tools read it as a boolean",
            f'quote it: "{text}":',
            at_key=True,
        )


def _strings(data: Any, path: PathT) -> Iterator[tuple[PathT, str, bool]]:
    if isinstance(data, str):
        yield path, data, False
    elif isinstance(data, dict):
        for key, value in data.items():
            yield (*path, key), key, True
            yield from _strings(value, (*path, key))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            yield from _strings(value, (*path, i))


def _lookup(data: Any, path: PathT) -> Any:
    """The value at `path`, or None."""
    for part in path:
        if isinstance(data, list) and isinstance(part, int):
            data = data[part] if part < len(data) else None
        elif isinstance(data, dict) and isinstance(part, str):
            data = data.get(part)
        else:
            return None
    return data


# --- issue 22: the smaller holes --------------------------------------------------------------

MAX_VERSION_CHARS = 64  # real ones are like 2026.1.24-3; a version is a directory name


def version_lengths(doc: Document) -> Iterator[Issue]:
    """An exact version is at most MAX_VERSION_CHARS long (it names a directory, a unit's
    ExecStart and a bad-version record; the schema's pattern alone allows any length)."""
    places: list[tuple[str, ...]] = [("runtime", "gateway", "version")]
    places += [("profiles", name, "gateway_version") for name in _profiles(doc)]
    for path in places:
        value = _get(doc.data, *path)
        if isinstance(value, str) and len(value) > MAX_VERSION_CHARS:
            yield Issue(
                path,
                f"{show(value[:24] + '...')} is {len(value)} characters long, more than any "
                f"release ({MAX_VERSION_CHARS} at most)",
                "pin an exact version like 2026.1.24-3",
            )


# Places in the user's home a gateway prefix must never be: their SSH keys, their systemd unit
# folder (every unit we write), our own state directory (the lock and the run records).
PRIVATE_HOME_DIRS = (".ssh", ".config/systemd", ".local/state/reconciler")


def gateway_prefix_private(doc: Document) -> Iterator[Issue]:
    """runtime.gateway.prefix is not inside ~/.ssh, the systemd unit folder or our state
    directory (versions are installed and pruned there: npm would write into, and retention
    remove from, them), however it is spelled."""
    value = _get(doc.data, "runtime", "gateway", "prefix")
    user = _get(doc.data, "host", "user")
    if not isinstance(value, str) or not isinstance(user, str):
        return
    if not value.startswith(("/", "~/")) or ".." in value.split("/"):
        return  # the other prefix rules say why
    home = _canonical("~", user)
    norm = _canonical(value, user)
    for private in PRIVATE_HOME_DIRS:
        if _inside(norm, f"{home}/{private}") or _inside(f"{home}/{private}", norm):
            yield Issue(
                ("runtime", "gateway", "prefix"),
                f"{show(value)} is or holds ~/{private}, which a gateway prefix must never be "
                "(versions are installed into and pruned from it)",
                "leave runtime.gateway.prefix out (~/.local/lib/<product>) or name a directory "
                "of its own",
            )
            return


RULES: list[Rule] = [
    profile_names,
    user_names,
    unique_ports,
    port_spacing,
    durations,
    state_dirs,
    data_roots,
    owned_paths,
    gateway_prefix,
    versioned_install,
    product_package,
    control_characters,
    yaml11_booleans,
    version_lengths,
    gateway_prefix_private,
]


def check(doc: Document) -> list[Issue]:
    """Every issue every rule finds: these, then every section's."""
    return [issue for rule in (*RULES, *sections.rules()) for issue in rule(doc)]

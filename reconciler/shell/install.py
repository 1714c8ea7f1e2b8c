"""Versioned gateway installs, carried out: an atomic install, and removing a directory tree.

The install (core.action.InstallVersion) changes nothing that runs until its last step, a rename
into `<prefix>/<version>/`: a failure anywhere before removes its temporary directory, and a run
killed with -9 leaves only `<prefix>/.install-<version>-<random>/`, which no unit names and the
next plan removes. File work is done as the prefix's owner (the spec user for a prefix in the
home, through system/as_user.py; root for a root-owned one, whose every directory from `/` down
must be root's and not group- or world-writable, checked again right before); npm runs as the
same account, the installed entry's `--version` check always as the spec's user (it is the
user's gateway: nothing just installed runs as root), each with a deadline at which its whole
process tree is killed.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from reconciler.bounded import read_bounded
from reconciler.core.action import InstallVersion, RemoveTree
from reconciler.core.command import Command, CommandResult
from reconciler.core.host import Account, HostContext
from reconciler.facts.files import path_chain
from reconciler.facts.gateway_versions import package_facts as _package_facts
from reconciler.facts.switches import (
    FAILED_INSTALLS,
    FILE_MODE,
    MEMORY_MODE,
    FailedInstall,
    encode_failed_installs,
    package_digest,
    parse_failed_installs,
)
from reconciler.gateway.versions import MARKER
from reconciler.semver import satisfies
from reconciler.shell.files import atomic_write, ensure_directory
from reconciler.system.as_user import acting_account, call_as

PREFIX_MODE = 0o755
CHECK_TIMEOUT_S = 60.0
_MAX_MEMORY = 256 * 1024
_NPM_CODE = re.compile(r"\bcode E[A-Z0-9]+")
_VERSION_TOKEN = re.compile(r"v?\d+\.\d+(?:\.\d+)?(?:[-+][\w.]+)?")


def _account(host: HostContext, scope: str) -> Account | None:
    """Whose permissions the file work needs: the user's for their prefix, ours for root's."""
    return acting_account(host) if scope == "user" else None


def _prepare(prefix: Path, version: str, package_json: str, replace: bool) -> str:
    """Create the prefix (when missing) and a fresh temporary directory holding package.json;
    refuse when the version's directory exists (the plan removes a broken one first), unless
    this install replaces it."""
    with contextlib.suppress(FileExistsError):
        prefix.mkdir(mode=PREFIX_MODE, parents=True)
    if os.path.lexists(prefix / version) and not replace:
        raise FileExistsError(
            errno.EEXIST, "already exists (remove it first: re-run plan)", str(prefix / version)
        )
    temp = prefix / f".install-{version}-{secrets.token_hex(6)}"
    temp.mkdir(mode=PREFIX_MODE)
    atomic_write(temp / "package.json", package_json, 0o644, backup=False)
    return str(temp)


def _commit(temp: Path, final: Path, version: str, replace: bool) -> str:
    """Write the completion marker, then rename the checked install into place (a replaced
    install is renamed aside just before, and removed after: the gap is two renames)."""
    atomic_write(temp / MARKER, f"{version}\n", 0o644, backup=False)
    aside = None
    if replace and os.path.lexists(final):
        aside = final.parent / f".remove-{version}-{secrets.token_hex(6)}"
        os.rename(final, aside)
    if os.path.lexists(final):
        raise FileExistsError(errno.EEXIST, "appeared during the install", str(final))
    os.rename(temp, final)
    if aside is not None:
        _discard(aside)
    fd = os.open(final.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return ""


def _discard(path: Path) -> str:
    """Remove a tree we created or were told to remove, without following symlinks."""
    with contextlib.suppress(FileNotFoundError):
        if path.is_symlink() or not path.is_dir():
            path.unlink()
        else:
            shutil.rmtree(path)
    return ""


def remove_tree(parent: Path, name: str) -> str:
    """Rename `parent/name` aside (a half-removed version never looks installed), then delete."""
    source = parent / name
    if not os.path.lexists(source):
        return "already gone"
    aside = source
    if not name.startswith((".install-", ".remove-")):
        aside = parent / f".remove-{name}-{secrets.token_hex(6)}"
        os.rename(source, aside)
    _discard(aside)
    return ""


def _said(result: CommandResult, lines: int = 3) -> str:
    """How the command ended and what it said went wrong: its error lines (npm's `npm error
    code ETARGET`, node's `Error [ERR_MODULE_NOT_FOUND]: ...`), else its last lines."""
    text = [line.strip() for line in (result.stderr or result.stdout).strip().splitlines()]
    text = [line for line in text if line and "complete log of this run" not in line]
    errors = [line for line in text if "error" in line.lower() and "node:internal" not in line]
    # npm's error code first: a failed install script prints `code 1 | path | command failed`
    # before the nested npm's `code ENOTCACHED` (the `node` package offline, npm 11.19)
    errors.sort(key=lambda line: _NPM_CODE.search(line) is None)
    how = result.error or f"exit {result.exit_code}"
    return f"{how}: " + " | ".join(errors[:lines] if errors else text[-lines:])


def _require_root_only(prefix: Path) -> None:
    """A root prefix whose every existing component only root can change, checked again at
    the moment root acts (the plan checked it too): otherwise another account could move the
    prefix or a parent away between our mkdir and npm's writes, or swap the entry we run."""
    unsafe = path_chain(prefix).not_root_only()
    if unsafe is not None:
        raise PermissionError(
            errno.EPERM,
            f"{unsafe.path} is not a directory only root can change; a root install is not "
            "done below it",
            str(prefix),
        )


def _engines_refused(
    op: InstallVersion,
    temp: Path,
    account: Account | None,
    run: Callable[[Command], CommandResult],
    done: list[CommandResult],
) -> str:
    """Why the node the units run cannot run this release (its package.json `engines.node`),
    or "": checked before the version is renamed into place, so a switch to it never starts
    (openclaw 2026.9.6 installs under node 22 with ignore-scripts and prints its version, but
    its gateway exits: docs/host-facts.md §6)."""
    package_json = temp / Path(op.entry).parts[0] / Path(op.entry).parts[1] / "package.json"
    if op.runs_alone or Path(op.entry).parts[1] == ".bin":
        return ""  # a fork behind npm's link: its package name is not known here
    _, engines = call_as(account, partial(_package_facts, package_json))
    if engines is None:
        return ""
    # The system's node, not the code just installed: as the user too (the check below).
    result = run(Command((op.node, "--version"), scope="user"))
    done.append(result)
    version = result.stdout.strip().lstrip("v")
    try:
        if not result.ok or satisfies(version, engines):
            return ""
    except ValueError:
        return ""  # a range npm itself would not read: npm decided
    return (
        f"{op.version} needs node {engines} (its package.json engines), and {op.node} is "
        f"v{version}: install a node that satisfies it first on the user's PATH (e.g. "
        "`npm install node@24.21.0`), then `reconciler update SPEC --retry PROFILE`"
    )


def install_version(
    op: InstallVersion, host: HostContext, run: Callable[[Command], CommandResult]
) -> tuple[bool, str, list[CommandResult]]:
    """Carry out `op`; (ok, detail, the commands run)."""
    account = _account(host, op.scope)
    if op.scope == "system":
        _require_root_only(op.prefix)
    temp = Path(
        call_as(account, partial(_prepare, op.prefix, op.version, op.package_json, op.replace))
    )
    done: list[CommandResult] = []
    try:
        # A user's `ignore-scripts=true` (~/.npmrc) would leave the `node` package without its
        # binary: npm installs it, the preinstall that fetches the binary never runs, and the
        # check below finds nothing (tried with npm 11.19, docs/host-facts.md §6).
        scripts = ("--ignore-scripts=false",) if op.scripts else ()
        npm = Command(
            (op.npm, "install", "--prefix", str(temp), "--no-fund", "--no-audit", *scripts),
            scope=op.scope,
            needs_root=op.needs_root,
            mutating=True,
            timeout_s=op.timeout_s,
        )
        result = run(npm)
        done.append(result)
        if not result.ok:
            return False, f"npm install failed ({_said(result)})", done
        refused = _engines_refused(op, temp, account, run, done)
        if refused:
            return False, refused, done
        # The check runs the installed code: always as the spec's user, also for a root
        # install (nothing we just installed runs as root; the units run it as the user).
        program = (str(temp / op.entry),) if op.runs_alone else (op.node, str(temp / op.entry))
        check = Command(
            (*program, "--version"),
            scope="user",
            timeout_s=CHECK_TIMEOUT_S,
        )
        result = run(check)
        done.append(result)
        printed = _VERSION_TOKEN.search(result.stdout.strip()) if result.ok else None
        if printed is None or printed.group(0).lstrip("v") != op.version:
            why = f"printed {printed.group(0)!r}" if printed else _said(result, 2)
            what = "node" if op.runs_alone else "gateway"
            return False, f"the installed {what}'s --version check failed ({why})", done
        call_as(account, partial(_commit, temp, op.prefix / op.version, op.version, op.replace))
        return True, "", done
    finally:
        if os.path.lexists(temp):
            with contextlib.suppress(OSError):
                call_as(account, partial(_discard, temp))


def remember_install(memory: Path, version: str, failure: FailedInstall | None) -> str:
    """As the spec user: record that `version` failed to install (or, `failure` None, forget
    that it did, after it installed)."""
    path = memory / FAILED_INSTALLS
    try:
        known = parse_failed_installs(read_bounded(path, _MAX_MEMORY, follow=False).decode())
    except (FileNotFoundError, UnicodeDecodeError):
        known = ()
    kept = tuple(f for f in known if f.version != version)
    if failure is None and len(kept) == len(known):
        return ""
    ensure_directory(memory, MEMORY_MODE, None)
    entries = kept if failure is None else (*kept, failure)
    atomic_write(path, encode_failed_installs(entries), FILE_MODE, backup=False)
    return ""


def record_outcome(op: InstallVersion, host: HostContext, ok: bool, detail: str) -> None:
    """Keep the install's outcome in the reconciler's memory (best effort: a memory that
    cannot be written only means the install is tried again, as before it existed)."""
    if op.memory is None or host.user is None:
        return
    failure = (
        None
        if ok
        else FailedInstall(
            op.version,
            package_digest(op.package_json),
            datetime.now(UTC).isoformat(timespec="seconds"),
            detail,
        )
    )
    memory = op.memory
    with contextlib.suppress(OSError, ValueError):
        call_as(acting_account(host), partial(remember_install, memory, op.version, failure))


def forget_install(memory: Path, version: str) -> bool:
    """As the spec user: forget that `version` failed to install (`update --retry`); True
    when it had."""
    path = memory / FAILED_INSTALLS
    try:
        known = parse_failed_installs(read_bounded(path, _MAX_MEMORY, follow=False).decode())
    except FileNotFoundError:
        return False
    if not any(f.version == version for f in known):
        return False
    remember_install(memory, version, None)
    return True


def run_remove_tree(op: RemoveTree, host: HostContext) -> Any:
    return call_as(_account(host, op.scope), partial(remove_tree, op.parent, op.name), 600.0)

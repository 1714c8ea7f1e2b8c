"""Carrying out a `GatedSwitch`: switch a profile's gateway, keep it only when it is healthy.

1. As the user, copy the unit file and the profile's config into the reconciler's memory
   (facts/switches.py) and write the intent file: from here on a kill -9 leaves a trace the next
   plan picks up (it runs the gate again with these copies, taken before the first attempt).
   Failing here changes nothing that runs.
2. Stop the gateway (downtime starts) and copy its state directory into the memory (a
   consistent copy: nothing writes it; an earlier complete copy of an interrupted switch is
   kept). Failing here starts the old gateway again, nothing switched.
3. Write the new unit, `daemon-reload`, `restart`.
4. Poll `gateway health --json` (the gateway's RPC, not an HTTP 200) until `ok: true` or
   `start_timeout_s`; a start whose main process exits and is restarted by systemd fails at
   once. After the first healthy answer the gateway must stay healthy for `settle_s` with no
   restart in between (health ok then crash counts as failure).
5. Healthy: the state copy becomes kept-state/PROFILE, the other copies are forgotten.
   Unhealthy: read the unit's last journal lines, stop, put the state directory back (the
   refused release's state goes to rejected-state/PROFILE: a release may migrate its state on
   start, SQLite schemas are not downgraded), restore the unit and the config (the gateway
   rewrites its config on start: migrations, plugin auto-enable,
   `meta.lastTouchedVersion`; newer releases refuse, exit 78, a config last written by a newer
   one), `daemon-reload`, `restart`, wait for the old version's health, record the new version
   as bad for this profile, forget the copies.

A product move (`replaces` set: clawdbot -> openclaw, docs/updates.md) is the same switch with
two units: the copies include the replaced unit's file; step 2 stops the replaced unit; before
step 3 the env file's variables are renamed to the new product's prefix (values kept: the same
token); the new unit is started; once healthy the replaced unit is disabled and its file
removed. A rollback removes the new unit and starts the replaced one again, its file put back
from the copy if it was already removed; the state directory (which holds the config and the
env file) comes back from its copy.

A switch with a `warm_up` (a version no unit on the host runs yet) first starts the new
version once while the old one serves (`run_warm_up`): a transient user unit on a throwaway
state directory and a free port, stopped once its `gateway health` answers (or at its
deadline), so that the real first start finds warm compile caches. Whatever happens to it,
the switch goes on: it only costs time, and its outcome is in the switch's report.

Every command runs through the runner (process trees ended at their deadline); each health
check's deadline is cut to what is left of the gate's.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import time
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, Protocol

from reconciler.bounded import InputRefused, read_bounded
from reconciler.core.action import WARM_UP_STOP_S, GatedSwitch, WarmUp
from reconciler.core.command import Command, CommandResult
from reconciler.core.host import HostContext
from reconciler.core.secrets import learn_secrets, remember_secret
from reconciler.core.switch import RESTART_DEADLINE_S, SwitchReport, WarmUpReport
from reconciler.facts.files import MAX_FILE_BYTES, has_value
from reconciler.facts.gateway_rpc import parse_health
from reconciler.facts.switches import (
    BAD_VERSIONS,
    CONFIG_COPY,
    FILE_MODE,
    INTENT,
    KEPT_STATE,
    MEMORY_MODE,
    REJECTED_STATE,
    REPLACED_COPY,
    STATE_COPY,
    STATE_DONE,
    SWITCH_DIR,
    SWITCHED,
    UNIT_COPY,
    BadVersion,
    Switched,
    SwitchIntent,
    encode_bad_versions,
    encode_switched,
    parse_bad_versions,
    parse_switched,
)
from reconciler.facts.systemd import (
    RESTART_PROPERTIES,
    JournalTailProbe,
    parse_show_blocks,
    unit_environment,
    unit_restarts,
)
from reconciler.frozen import frozen
from reconciler.gateway.versions import is_version
from reconciler.shell.files import atomic_write, ensure_directory, ensure_secret_env, remove_file
from reconciler.system.as_user import acting_account, call_as


class SwitchRunner(Protocol):
    """What the gate needs of the runner (reconciler.shell.runner.HostRunner)."""

    host: HostContext
    env: dict[str, str]  # the reconciler's environment (read for the test hook only)
    sleep: Any  # Callable[[float], None]
    # What this runner warmed up already (programs: node and entry point): a second profile
    # switching to the same version in the same apply finds its caches warm.
    warmed: set[tuple[str, ...]]

    def run(self, command: Command) -> CommandResult: ...


UNIT_MODE = 0o644
TOKEN_MODE = 0o600
#: a value an EnvironmentFile line holds as it is
_PLAIN_VALUE = re.compile(r"[A-Za-z0-9._~+/=:@%,-]+")
# systemctl's exit status for a unit the manager has not loaded (LSB "not installed").
NOT_LOADED = 5
# A product move stops a unit it did not write: `clawdbot gateway install`'s declares no
# TimeoutStopSec, so systemd's default 90 s applies, and a clawdbot in its cold start takes
# all of it (a 50 s deadline timed out under real systemd); the stop must outlast it.
REPLACED_STOP_DEADLINE_S = 90.0 + 30.0
POLL_S = 0.5  # between health checks (a real `gateway health` itself takes about 3 s)
# A state directory's copy (or its restore) may take long: many sessions, a slow disk.
STATE_COPY_TIMEOUT_S = 900.0
#: how long a rollback waits, at least, for the version that served before to answer again
ROLLBACK_START_S = 300.0
JOURNAL_LINES = 10
_MAX_COPY = 4 * 1024 * 1024
_STATE_PROPERTIES = (*RESTART_PROPERTIES, "ActiveState", "SubState")


# --- the steps (a test hook) ---------------------------------------------------------------------

#: Every step a switch begins, in order (`_begin` refuses another name). A product move adds
#: `env` and `retire`; a switch of a version some unit runs already has no `warm-up`.
SWITCH_STEPS = (
    "warm-up",  # the new version started once on throwaway state (no intent yet)
    "copies",  # the unit and config copied, the intent written
    "stop",  # the intent is there, the old gateway still runs
    "state-copy",  # the gateway stopped, its state directory not copied yet
    "env",  # a move: the env file's variables renamed
    "unit",  # the new unit file written
    "restart",  # the unit written, not loaded yet: daemon-reload, restart
    "gate",  # the new version started: `gateway health` until ok and the window
    "retire",  # a move passed its gate: the replaced unit disabled and removed
    "keep",  # healthy: the kept switch recorded, the state copy moved to kept-state
    "forget",  # the copies and the intent removed: the switch is over
)
#: Test-only, inert unless set (tests/e2e/test_updates.py, docs/testing.md): with it every
#: step a switch begins is written to stderr (`reconciler switch step: PROFILE STEP`), and at
#: the step it names the switch stops (`reconciler switch paused: PROFILE STEP`) until the
#: process is killed, so that a test can SIGKILL a real apply at a known step.
PAUSE_ENV = "RECONCILER_TEST_SWITCH_PAUSE"
_PAUSE_S = 3600.0


def _begin(runner: SwitchRunner, op: GatedSwitch, step: str) -> None:
    """The switch of `op` begins `step` (see PAUSE_ENV; nothing at all when it is unset)."""
    if step not in SWITCH_STEPS:
        raise ValueError(f"not a switch step: {step}")
    wanted = runner.env.get(PAUSE_ENV, "")
    if not wanted:
        return
    import sys  # only for the test hook: the runner prints nothing otherwise

    sys.stderr.write(f"reconciler switch step: {op.profile} {step}\n")
    if wanted == step:
        sys.stderr.write(f"reconciler switch paused: {op.profile} {step}\n")
        sys.stderr.flush()
        _pause()
    sys.stderr.flush()


def _pause() -> None:
    """Wait for the test's SIGKILL (the switch goes on if none comes)."""
    time.sleep(_PAUSE_S)


# --- as the user: the memory's files ------------------------------------------------------------


def _switch_dir(memory: Path, profile: str) -> Path:
    return memory / SWITCH_DIR / profile


def _read_text(path: Path) -> tuple[str | None, int | None]:
    """A file's text and mode, (None, None) when it is absent."""
    try:
        data = read_bounded(path, _MAX_COPY, follow=False)
    except FileNotFoundError:
        return None, None
    return data.decode("utf-8"), os.stat(path, follow_symlinks=False).st_mode & 0o7777


def save_copies(
    memory: Path,
    profile: str,
    unit_file: Path,
    config: Path,
    intent: SwitchIntent,
    replaced: Path | None = None,
) -> tuple[str, bool]:
    """Copy the unit and the config (and a product move's `replaced` unit file), then write the
    intent; keep the copies of an earlier, interrupted attempt (they show the host before it).
    Returns the intent in force (its JSON text, to cross back from the user's child) and
    whether it was an earlier one."""
    for directory in (memory, memory / SWITCH_DIR, _switch_dir(memory, profile)):
        ensure_directory(directory, MEMORY_MODE, None)
    here = _switch_dir(memory, profile)
    with contextlib.suppress(FileNotFoundError, ValueError, UnicodeDecodeError, InputRefused):
        earlier = SwitchIntent.parse(read_bounded(here / INTENT, _MAX_COPY, follow=False).decode())
        return earlier.to_json(), True
    modes: dict[str, int | None] = {}
    sources = ((UNIT_COPY, unit_file), (CONFIG_COPY, config))
    for name, source in (*sources, *(((REPLACED_COPY, replaced),) if replaced else ())):
        text, mode = _read_text(source)
        modes[name] = mode
        if text is None:
            with contextlib.suppress(FileNotFoundError):
                (here / name).unlink()
        else:
            atomic_write(here / name, text, FILE_MODE, backup=False)
    record = replace(
        intent,
        unit_mode=modes[UNIT_COPY],
        config_mode=modes[CONFIG_COPY],
        replaced_mode=modes.get(REPLACED_COPY),
    )
    # Last: the intent says the copies are complete.
    atomic_write(here / INTENT, record.to_json(), FILE_MODE, backup=False)
    return record.to_json(), False


def _disk_bytes(root: Path) -> int:
    """Bytes a tree takes on disk (st_blocks), symlinks not followed."""
    total = 0
    for directory, dirs, files in os.walk(root):
        for name in (*dirs, *files):
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(directory, name)).st_blocks * 512
    return total


def _copy_tree(source: Path, target: Path) -> None:
    """A consistent copy (the gateway is stopped): modes and times kept, symlinks copied as
    symlinks, never followed out of the tree."""
    shutil.copytree(source, target, symlinks=True, copy_function=shutil.copy2)


def _replace_tree(source: Path, target: Path) -> None:
    """Move `source` to `target` (which must not exist): a rename, else copy and remove."""
    try:
        os.rename(source, target)
    except OSError:
        _copy_tree(source, target)
        shutil.rmtree(source)


def snapshot_state(memory: Path, profile: str, state: Path) -> dict[str, Any]:
    """Copy the profile's state directory into switch/PROFILE/state (the gateway is stopped),
    then write the completion marker. An earlier complete copy (an interrupted switch) is
    kept: it shows the state before the new release ever started. {"seconds", "bytes",
    "copied"}; nothing to copy when the state directory does not exist."""
    here = _switch_dir(memory, profile)
    if (here / STATE_DONE).exists():
        kept = memory / KEPT_STATE / profile
        if not os.path.lexists(here / STATE_COPY) and _real_dir(kept):
            # A run killed after its keep moved this switch's copy to kept-state, before the
            # intent was removed: the copy is this switch's (the keep replaced the older one),
            # moved back so that this attempt's rollback or keep has it.
            _replace_tree(kept, here / STATE_COPY)
        return {"seconds": 0.0, "bytes": _disk_bytes(here / STATE_COPY), "copied": False}
    if not os.path.isdir(state) or os.path.islink(state):
        return {"seconds": 0.0, "bytes": 0, "copied": False, "absent": True}
    began = time.monotonic()
    shutil.rmtree(here / STATE_COPY, ignore_errors=True)  # a copy killed half way
    _copy_tree(state, here / STATE_COPY)
    atomic_write(here / STATE_DONE, str(state) + "\n", FILE_MODE, backup=False)
    return {
        "seconds": time.monotonic() - began,
        "bytes": _disk_bytes(here / STATE_COPY),
        "copied": True,
    }


def _real_dir(path: Path) -> bool:
    return os.path.isdir(path) and not os.path.islink(path)


def _emptied_slot(memory: Path, folder: str, profile: str) -> Path:
    """`memory/folder/profile`, its folder made and an older copy there removed (one per profile)."""
    slot = memory / folder / profile
    ensure_directory(memory / folder, MEMORY_MODE, None)
    shutil.rmtree(slot, ignore_errors=True)
    return slot


def restore_state(memory: Path, profile: str, state: Path) -> str:
    """Put the copied state directory back (the gateway is stopped): what the refused release
    left goes to rejected-state/PROFILE (replacing an older one), the copy is copied back
    (kept in the memory until the copies are forgotten). "" when there is no copy."""
    here = _switch_dir(memory, profile)
    if not (here / STATE_DONE).exists() or not _real_dir(here / STATE_COPY):
        return ""  # no copy to put back: the state directory stays as it is
    rejected = _emptied_slot(memory, REJECTED_STATE, profile)
    if os.path.lexists(state):
        _replace_tree(state, rejected)
    _copy_tree(here / STATE_COPY, state)
    return str(state)


def keep_state(memory: Path, profile: str) -> str:
    """The switch was kept: its pre-switch copy becomes kept-state/PROFILE (replacing the one
    of the switch before), kept until the next kept switch."""
    here = _switch_dir(memory, profile)
    if not (here / STATE_DONE).exists() or not _real_dir(here / STATE_COPY):
        return ""  # nothing copied, or kept already by a run killed before the intent went
    kept = _emptied_slot(memory, KEPT_STATE, profile)
    _replace_tree(here / STATE_COPY, kept)
    return str(kept)


def write_unit(path: Path, content: str) -> str:
    atomic_write(path, content, UNIT_MODE, backup=True)
    return ""


def rename_env(
    path: Path,
    old_prefix: str,
    new_prefix: str,
    token: str | None,
    replaced_unit: Path | None = None,
) -> str:
    """A product move's env file: every `<old_prefix>X=` line becomes `<new_prefix>X=` with its
    value (the new product ignores the old names; the token stays the same, so every paired
    client keeps working), unless the new name is set already; then `token` holds a value:
    the one the replaced unit file assigns in an `Environment=` line (where `clawdbot gateway
    install` writes it, docs/host-facts.md §1), else one generated once when neither had any.
    Atomic, mode 0600; nothing to do when absent and no token is wanted. Idempotent: an
    interrupted move renames nothing twice."""
    try:
        text = read_bounded(path, MAX_FILE_BYTES, follow=False).decode("utf-8")
    except FileNotFoundError:
        text = None
    lines = text.splitlines() if text is not None else []
    learn_secrets(text or "")  # the values are masked wherever they show
    names = {line.partition("=")[0].strip() for line in lines if "=" in line}
    renamed: list[str] = []
    for line in lines:
        name, sep, value = line.partition("=")
        key = name.strip()
        if sep and key.startswith(old_prefix):
            new = new_prefix + key[len(old_prefix) :]
            if new not in names:
                renamed.append(f"{new}={value}")
            continue
        renamed.append(line)
    if token is not None and not has_value("\n".join(renamed), token):
        from_unit = _unit_token(replaced_unit, old_prefix + token.removeprefix(new_prefix))
        if from_unit is not None:
            remember_secret(from_unit)
            renamed = [ln for ln in renamed if ln.partition("=")[0].strip() != token]
            renamed.append(f"{token}={from_unit}")
    if renamed != lines:
        atomic_write(path, "\n".join(renamed) + "\n", TOKEN_MODE, backup=False)
    if token is not None:
        ensure_secret_env(path, token, TOKEN_MODE)
    return ""


def _unit_token(unit_file: Path | None, key: str) -> str | None:
    """The value the unit file at `unit_file` assigns to `key` (None: no file, no such line).
    Only a value an EnvironmentFile holds unquoted (no blank, quote, backslash or `$`): any
    other is left behind and a new token generated, rather than written in a form the new
    unit would read differently."""
    if unit_file is None:
        return None
    try:
        text = read_bounded(unit_file, MAX_FILE_BYTES, follow=False).decode("utf-8")
    except (FileNotFoundError, UnicodeDecodeError):
        return None
    value = unit_environment(text).get(key)
    return value if value and _PLAIN_VALUE.fullmatch(value) else None


def retire_unit(unit_file: Path) -> str:
    """A product move's replaced unit file, removed (a backup kept beside it, which systemd
    ignores; the memory keeps a copy until the move is over)."""
    with contextlib.suppress(FileNotFoundError):
        remove_file(unit_file, backup=True)
    return ""


def present(path: Path) -> bool:
    return os.path.lexists(path)


def restore_copies(
    memory: Path, profile: str, unit_file: Path, config: Path, replaced: Path | None = None
) -> str:
    """Put back the unit and the config (and a product move's replaced unit) as they were
    before the switch."""
    here = _switch_dir(memory, profile)
    intent = SwitchIntent.parse(read_bounded(here / INTENT, _MAX_COPY, follow=False).decode())
    restored = []
    for name, target, mode in (
        (UNIT_COPY, unit_file, intent.unit_mode),
        (CONFIG_COPY, config, intent.config_mode),
        *(((REPLACED_COPY, replaced, intent.replaced_mode),) if replaced else ()),
    ):
        if mode is None:
            if name == UNIT_COPY:  # there was no unit before: none after either
                with contextlib.suppress(FileNotFoundError):
                    target.unlink()
            continue
        text, _ = _read_text(here / name)
        if text is None:
            raise FileNotFoundError(f"the copy of {target} is gone from {here}")
        atomic_write(target, text, mode, backup=False)
        restored.append(str(target))
    return ", ".join(restored)


def forget_copies(memory: Path, profile: str) -> str:
    """The switch is over: the intent first (then nothing resumes), then the copies."""
    here = _switch_dir(memory, profile)
    with contextlib.suppress(FileNotFoundError):
        (here / INTENT).unlink()
    shutil.rmtree(here, ignore_errors=True)
    return ""


def mark_bad(memory: Path, new: BadVersion) -> str:
    """Record `new` in the bad-version file, replacing that profile's earlier mark."""
    ensure_directory(memory, MEMORY_MODE, None)
    path = memory / BAD_VERSIONS
    try:
        text = read_bounded(path, _MAX_COPY, follow=False).decode()
        marks = parse_bad_versions(text, str(path))
    except FileNotFoundError:
        marks = ()
    kept = tuple(m for m in marks if m.profile != new.profile)
    atomic_write(path, encode_bad_versions((*kept, new)), FILE_MODE, backup=False)
    return ""


def record_switched(memory: Path, profile: str, old: str, new: str, at: str) -> str:
    """Remember the kept switch (what `rollback` goes back to by default)."""
    path = memory / SWITCHED
    try:
        entries = parse_switched(read_bounded(path, _MAX_COPY, follow=False).decode())
    except (FileNotFoundError, UnicodeDecodeError):
        entries = ()
    kept = tuple(e for e in entries if e.profile != profile)
    atomic_write(
        path, encode_switched((*kept, Switched(profile, old, new, at))), FILE_MODE, backup=False
    )
    return ""


def clear_bad(memory: Path, profile: str) -> bool:
    """Forget `profile`'s mark (`update --retry`); True when there was one."""
    path = memory / BAD_VERSIONS
    try:
        text = read_bounded(path, _MAX_COPY, follow=False).decode()
    except FileNotFoundError:
        return False
    marks = parse_bad_versions(text, str(path))
    kept = tuple(m for m in marks if m.profile != profile)
    if len(kept) == len(marks):
        return False
    atomic_write(path, encode_bad_versions(kept), FILE_MODE, backup=False)
    return True


# --- the warm-up ---------------------------------------------------------------------------------

WARM_UP_MODE = 0o700
WARM_UP_STATE = "state"
WARM_UP_ENV = "gateway.env"
_ENDED_STATES = ("inactive", "failed")


def prepare_warm_up(directory: Path, config_name: str, port: int, token_key: str) -> str:
    """As the user: a fresh throwaway directory for a warm-up (a killed run's leftover removed
    first, never followed if it is a symlink): `state/` holding a minimal config (local mode,
    loopback, `port`, the agents' workspace inside the directory, so nothing of the user's home
    is touched) and `gateway.env` with a generated token (0600, never shown)."""
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(directory)  # refuses a symlink in its place (OSError)
    ensure_directory(directory, WARM_UP_MODE, None)
    ensure_directory(directory / WARM_UP_STATE, WARM_UP_MODE, None)
    config = {
        "gateway": {"mode": "local", "port": port, "bind": "loopback"},
        "agents": {"defaults": {"workspace": str(directory / "workspace")}},
    }
    atomic_write(
        directory / WARM_UP_STATE / config_name,
        json.dumps(config, indent=2) + "\n",
        TOKEN_MODE,
        backup=False,
    )
    ensure_secret_env(directory / WARM_UP_ENV, token_key, TOKEN_MODE)
    return ""


def remove_warm_up(directory: Path) -> str:
    """As the user: the throwaway directory removed (what the warm-up's gateway left in it)."""
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(directory)
    return ""


def free_port() -> int:
    """A loopback port nothing listens on now (the kernel's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _warm_up_env(warm: WarmUp, port: int) -> list[tuple[str, str]]:
    state = warm.directory / WARM_UP_STATE
    return [
        (f"{warm.env_prefix}STATE_DIR", str(state)),
        (f"{warm.env_prefix}CONFIG_PATH", str(state / warm.config_name)),
        (f"{warm.env_prefix}GATEWAY_PORT", str(port)),
    ]


def warm_up_command(warm: WarmUp, port: int) -> Command:
    """`systemd-run --user` of the new version's gateway on the throwaway state: the gateway
    unit's PATH, HOME in the throwaway directory, the token from its env file (never in argv);
    systemd ends it at RuntimeMaxSec= whatever happens to us (--collect: nothing stays loaded),
    and a stop sends SIGTERM to the main process only (KillMode=mixed), which lets node write
    its compile cache as it exits, the rest killed at TimeoutStopSec=."""
    env = [
        ("HOME", str(warm.directory)),
        ("PATH", warm.path_env),
        *_warm_up_env(warm, port),
        # A throwaway instance must not announce itself on the LAN beside the real one (every
        # release we install advertises over mDNS by default and reads `<PREFIX>DISABLE_BONJOUR`:
        # clawdbot 2026.1.24-3 and openclaw 2026.1.30 `gateway/server-discovery-runtime.js`,
        # openclaw 2026.9.6 `server-discovery-runtime-*.mjs`; "1" is what all of them accept).
        (f"{warm.env_prefix}DISABLE_BONJOUR", "1"),
    ]
    return Command(
        (
            "systemd-run",
            "--user",
            f"--unit={warm.unit}",
            "--collect",
            "--quiet",
            f"--property=RuntimeMaxSec={warm.runtime_max_s}",
            "--property=KillMode=mixed",
            f"--property=TimeoutStopSec={WARM_UP_STOP_S}",
            f"--property=EnvironmentFile={warm.directory / WARM_UP_ENV}",
            *(f"--setenv={k}={v}" for k, v in env if v),
            "--",
            *warm.program,
            "gateway",
            "--port",
            str(port),
        ),
        scope="user",
        mutating=True,
        timeout_s=30.0,
    )


def warm_up_check(warm: WarmUp, port: int) -> Command:
    """The new version's own `gateway health --json` against the warm-up's gateway."""
    return Command(
        (
            "env",
            *(f"{k}={v}" for k, v in _warm_up_env(warm, port)),
            *warm.program,
            "gateway",
            "health",
            "--json",
        ),
        scope="user",
        timeout_s=20.0,
        env_file=warm.directory / WARM_UP_ENV,
    )


def _unit_active(runner: SwitchRunner, unit: str) -> bool:
    """Whether the transient unit still runs (a collected one is unknown: `inactive`)."""
    command = Command(
        ("systemctl", "--user", "show", unit, "-p", "ActiveState"), scope="user", timeout_s=15
    )
    result = runner.run(command)
    blocks = parse_show_blocks(result.stdout) if result.ok else []
    if not blocks:
        return True  # a manager that cannot say: the health check decides
    return blocks[0].get("ActiveState", "inactive") not in _ENDED_STATES


def _stop_transient(runner: SwitchRunner, unit: str) -> str:
    """Stop the warm-up's unit (SIGTERM, then systemd's kill at TimeoutStopSec); "" when it
    stopped or was not loaded (collected: it ended by itself), else why not."""
    command = Command(
        ("systemctl", "--user", "stop", unit),
        scope="user",
        mutating=True,
        timeout_s=float(WARM_UP_STOP_S + 20),
    )
    result = runner.run(command)
    if result.ok or (result.exit_code == NOT_LOADED and "not loaded" in result.stderr):
        return ""
    return f"systemctl --user stop {unit}: {result.summary()}"


def run_warm_up(runner: SwitchRunner, warm: WarmUp) -> WarmUpReport:
    """Start the new version once on throwaway state while the old one serves, wait for its
    `gateway health` (at most `warm.timeout_s`), stop it, remove the throwaway directory."""
    account = acting_account(runner.host)
    began = time.monotonic()
    # A killed run's warm-up may still run (until its RuntimeMaxSec): its name is ours again.
    leftover = _stop_transient(runner, warm.unit)
    if leftover:
        return WarmUpReport("failed", time.monotonic() - began, leftover)
    port = free_port()
    token_key = f"{warm.env_prefix}GATEWAY_TOKEN"
    try:
        call_as(
            account, partial(prepare_warm_up, warm.directory, warm.config_name, port, token_key)
        )
    except (OSError, InputRefused, UnicodeDecodeError) as exc:
        return WarmUpReport("failed", time.monotonic() - began, f"cannot prepare it: {exc}")
    report = _warm_up_wait(runner, warm, port)
    stopped = _stop_transient(runner, warm.unit)
    with contextlib.suppress(OSError):
        call_as(account, partial(remove_warm_up, warm.directory))
    if stopped:
        detail = "; ".join(x for x in (report.detail, stopped) if x)
        report = replace(report, detail=detail)
    return replace(report, seconds=time.monotonic() - began)


def _warm_up_wait(runner: SwitchRunner, warm: WarmUp, port: int) -> WarmUpReport:
    started = runner.run(warm_up_command(warm, port))
    if not started.ok:
        return WarmUpReport("failed", 0.0, f"systemd-run: {started.summary()}")
    check = warm_up_check(warm, port)
    deadline = time.monotonic() + warm.timeout_s
    last = "no answer yet"
    while True:
        if not _unit_active(runner, warm.unit):
            return WarmUpReport(
                "failed",
                0.0,
                f"its gateway exited before it answered (journalctl --user -u {warm.unit})",
            )
        left = max(1.0, deadline - time.monotonic())
        health = parse_health(runner.run(replace(check, timeout_s=min(check.timeout_s, left))))
        if health.ok:
            return WarmUpReport("ready", 0.0)
        last = health.detail or last
        if time.monotonic() >= deadline:
            return WarmUpReport(
                "timed-out",
                0.0,
                f"not ready within {warm.timeout_s:g} s (`gateway health`: {last})",
            )
        runner.sleep(POLL_S)


# --- the gate ------------------------------------------------------------------------------------


@frozen
class Health:
    """How the wait for a healthy gateway ended."""

    healthy_at: float | None  # monotonic time of the first healthy answer (None: never)
    reason: str = ""


class Gate:
    """One switch on one runner (the commands and as-user file work it needs)."""

    def __init__(self, runner: SwitchRunner, op: GatedSwitch) -> None:
        self.runner = runner
        self.op = op
        self.account = acting_account(runner.host)
        # The unit watched and restarted: the new one; a product move's rollback watches the
        # replaced one.
        self.unit = op.unit

    def as_user(self, work: Any, timeout_s: float = 60.0) -> Any:
        return call_as(self.account, work, timeout_s)

    def systemctl(self, *args: str) -> str:
        """Run a mutating `systemctl --user ...`; "" when it worked, else why not. A stop or
        restart gets the deadline the unit's stop timeout fits in (core/switch.py)."""
        command = Command(
            ("systemctl", "--user", *args),
            scope="user",
            mutating=True,
            timeout_s=RESTART_DEADLINE_S if args[:1] in (("restart",), ("stop",)) else 30.0,
        )
        result = self.runner.run(command)
        return "" if result.ok else f"systemctl --user {' '.join(args)}: {result.summary()}"

    def process_state(self) -> tuple[int, bool, str]:
        """The unit's automatic restarts so far, whether its main process has ended (the unit
        is failed, or waiting to be restarted), and how it last ended."""
        command = Command(
            ("systemctl", "--user", "show", self.unit, "-p", ",".join(_STATE_PROPERTIES)),
            scope="user",
            timeout_s=15,
        )
        result = self.runner.run(command)
        blocks = parse_show_blocks(result.stdout) if result.ok else []
        if not blocks:
            return 0, False, ""  # a manager that cannot say: the health check decides
        block = blocks[0]
        found = unit_restarts(self.unit, block)
        ended = block.get("ActiveState") == "failed" or block.get("SubState") == "auto-restart"
        return found.n_restarts, ended, found.last_exit()

    def journal(self) -> tuple[str, ...]:
        probe = JournalTailProbe(self.unit, JOURNAL_LINES)
        tail = probe.parse(self.runner.run(probe.command(self.runner.host)))
        return tail.lines or ((tail.detail,) if tail.detail else ())

    def wait_healthy(
        self, check: Command, started: float, settle_s: float, timeout_s: float | None = None
    ) -> Health:
        """Poll `check` until healthy and still healthy `settle_s` later, with no restart of
        the unit in between; or the reason it was not, at `timeout_s` (default
        `start_timeout_s`) after `started`."""
        op, runner = self.op, self.runner
        timeout_s = op.start_timeout_s if timeout_s is None else timeout_s
        deadline = started + timeout_s
        base_restarts, _, _ = self.process_state()
        first_ok: float | None = None
        last = "no answer yet"
        while True:
            now = time.monotonic()
            end = deadline if first_ok is None else max(deadline, first_ok + settle_s)
            count, ended, exit_text = self.process_state()
            if ended or count > base_restarts:
                died = f" ({exit_text})" if exit_text else ""
                if first_ok is not None:
                    return Health(None, f"healthy at first, then its process ended{died}")
                return Health(None, f"its process ended{died}; systemd restarted it")
            # Until the first answer, a call gets what is left of the start timeout. Once it
            # answered, every call gets its whole timeout: a call cut short by the settle
            # window's end proves nothing, and on a busy host a healthy gateway whose last
            # call had 1 s was rolled back ("timed out after 1 s", seen in CI under load).
            left = max(1.0, end - now) if first_ok is None else check.timeout_s
            result = runner.run(replace(check, timeout_s=min(check.timeout_s, left)))
            health = parse_health(result)
            now = time.monotonic()
            if health.ok:
                if first_ok is None:
                    first_ok = now
                if now - first_ok >= settle_s:
                    return Health(first_ok)
            elif first_ok is not None:
                return Health(
                    None,
                    f"healthy at first, then `gateway health` failed within {settle_s:g} s: "
                    f"{health.detail}",
                )
            else:
                last = health.detail or last
            if now >= end:
                return Health(None, f"`gateway health` not ok within {timeout_s:g} s: {last}")
            runner.sleep(POLL_S)

    def restart(self) -> tuple[float, str]:
        """daemon-reload and restart: (when the restart began, "" or why it failed)."""
        problem = self.systemctl("daemon-reload")
        began = time.monotonic()
        if not problem:
            problem = self.systemctl("restart", self.unit)
        return began, problem

    def stop_present(
        self, unit: str, unit_file: Path, deadline_s: float = RESTART_DEADLINE_S
    ) -> str:
        """Stop `unit` when its file is there (an interrupted product move may have removed
        the replaced unit's file, or never written the new one); "" or why not. A file the
        manager never loaded (written, killed before the daemon-reload) runs nothing:
        `systemctl stop` exits 5, "Unit ... not loaded", which is not a failure here."""
        if not self.as_user(partial(present, unit_file)):
            return ""
        command = Command(
            ("systemctl", "--user", "stop", unit),
            scope="user",
            mutating=True,
            timeout_s=deadline_s,
        )
        result = self.runner.run(command)
        if result.ok or (result.exit_code == NOT_LOADED and "not loaded" in result.stderr):
            return ""
        return f"systemctl --user stop {unit}: {result.summary()}"


def run_switch(runner: SwitchRunner, op: GatedSwitch) -> SwitchReport | str:
    """Carry out `op` (see the module docstring): its report, or why nothing was switched."""
    warmed: WarmUpReport | None = None
    if op.warm_up is not None and op.warm_up.program not in runner.warmed:
        # Before anything of the switch (no intent yet): a kill here leaves only the transient
        # unit, which its RuntimeMaxSec ends, and the throwaway directory the next one removes.
        _begin(runner, op, "warm-up")
        warmed = run_warm_up(runner, op.warm_up)
        runner.warmed.add(op.warm_up.program)
    report = _run_switch(runner, op)
    if warmed is not None and isinstance(report, SwitchReport):
        return replace(report, warm_up=warmed)
    if warmed is not None:
        return f"{report} ({warmed.text()})"
    return report


def _run_switch(runner: SwitchRunner, op: GatedSwitch) -> SwitchReport | str:
    gate = Gate(runner, op)
    intent = SwitchIntent(
        op.from_version, op.to_version, _now(), op.unit, replaces=op.replaces or ""
    )
    _begin(runner, op, "copies")
    try:
        held, resumed = gate.as_user(
            partial(
                save_copies,
                op.memory,
                op.profile,
                op.unit_file,
                op.config,
                intent,
                op.replaces_file,
            )
        )
    except (OSError, UnicodeDecodeError) as exc:
        return f"nothing switched: cannot keep a copy: {exc}"
    old = SwitchIntent.parse(held).from_version if resumed else op.from_version
    stopped_at: float | None = None
    snapshot: dict[str, Any] = {}
    # The unit that runs now: a product move's replaced one (an interrupted move may also
    # have started the new one: both are stopped before the copy).
    running = _running_units(op)
    if op.state is not None:
        # Stopped for the copy (it restarts anyway): a consistent copy, downtime starts here.
        _begin(runner, op, "stop")
        stopped_at = time.monotonic()
        problem = (
            next((p for p in (gate.stop_present(*unit) for unit in running) if p), "")
            if op.replaces is not None
            else gate.systemctl("stop", op.unit)
        )
        if not problem:
            _begin(runner, op, "state-copy")
        try:
            snapshot = (
                {}
                if problem
                else gate.as_user(partial(snapshot_state, *_state_args(op)), STATE_COPY_TIMEOUT_S)
            )
        except (OSError, shutil.Error) as exc:
            problem = f"cannot copy {op.state}: {exc}"
        if problem:
            gate.systemctl("start", running[0][0])  # the old unit is still in place
            gate.as_user(partial(forget_copies, op.memory, op.profile))
            return f"nothing switched: {problem}"
    try:
        if op.replaces is not None and op.env_file is not None and op.env_rename is not None:
            rename = partial(
                rename_env, op.env_file, *op.env_rename, op.env_token, op.replaces_file
            )
            _begin(runner, op, "env")
            gate.as_user(rename)
        _begin(runner, op, "unit")
        gate.as_user(partial(write_unit, op.unit_file, op.content))
    except (OSError, UnicodeDecodeError) as exc:
        if op.replaces is not None and stopped_at is not None:
            # The env file may be renamed already: the state copy puts it back.
            return _roll_back(gate, old, f"nothing switched: {exc}", stopped_at, blame=False)
        if stopped_at is not None:
            gate.systemctl("start", op.unit)
        gate.as_user(partial(forget_copies, op.memory, op.profile))
        return f"nothing switched: {exc}"
    _begin(runner, op, "restart")
    began, problem = gate.restart()
    down_from = stopped_at if stopped_at is not None else began
    copied = (
        {"snapshot_s": snapshot["seconds"], "snapshot_bytes": snapshot["bytes"]}
        if snapshot.get("copied")
        else {}
    )
    if problem:
        # systemd refused, not the gateway: put things back, but do not blame the version.
        return replace(_roll_back(gate, old, problem, down_from, blame=False), **copied)
    _begin(runner, op, "gate")
    health = gate.wait_healthy(op.check, began, op.settle_s)
    if health.healthy_at is not None:
        if op.replaces is not None:
            _begin(runner, op, "retire")
        retired = _retire(gate) if op.replaces is not None else ""
        _begin(runner, op, "keep")
        if old is not None and is_version(old) and old != op.to_version:
            with contextlib.suppress(OSError):
                gate.as_user(
                    partial(record_switched, op.memory, op.profile, old, op.to_version, _now())
                )
        with contextlib.suppress(OSError, shutil.Error):
            gate.as_user(partial(keep_state, op.memory, op.profile), STATE_COPY_TIMEOUT_S)
        if not retired:
            # A replaced unit that could not be removed keeps the intent: the next run does.
            _begin(runner, op, "forget")
            gate.as_user(partial(forget_copies, op.memory, op.profile))
        return SwitchReport(
            op.profile,
            old,
            op.to_version,
            "switched",
            health.healthy_at - down_from,
            # A replaced unit left behind: said, and done by the next run (the intent is kept).
            reason=f"the replaced unit is still there: {retired}" if retired else "",
            **copied,
        )
    return replace(_roll_back(gate, old, health.reason, down_from), **copied)


def _running_units(op: GatedSwitch) -> list[tuple[str, Path, float]]:
    """The units a switch stops first, with the deadline of each stop: the replaced one of a
    product move (then the new one, which an interrupted move may have started), else the
    switched unit."""
    if op.replaces is not None and op.replaces_file is not None:
        return [
            (op.replaces, op.replaces_file, REPLACED_STOP_DEADLINE_S),
            (op.unit, op.unit_file, RESTART_DEADLINE_S),
        ]
    return [(op.unit, op.unit_file, RESTART_DEADLINE_S)]


def _retire(gate: Gate) -> str:
    """A product move passed its gate: the replaced unit disabled, its file removed, the
    manager reloaded (it would start at boot and fight for the port); "" or what failed."""
    op = gate.op
    assert op.replaces is not None and op.replaces_file is not None
    problem = ""
    if gate.as_user(partial(present, op.replaces_file)):
        problem = gate.systemctl("disable", op.replaces)
        if not problem:
            try:
                gate.as_user(partial(retire_unit, op.replaces_file))
            except OSError as exc:
                problem = f"cannot remove {op.replaces_file}: {exc}"
        if not problem:
            problem = gate.systemctl("daemon-reload")
    return problem


def _state_args(op: GatedSwitch) -> tuple[Path, str, Path]:
    assert op.state is not None
    return op.memory, op.profile, op.state


def _roll_back(
    gate: Gate, old: str | None, reason: str, down_since: float, *, blame: bool = True
) -> SwitchReport:
    """Put the old unit and config back and check the old version answers again; with
    `blame`, mark the new version bad for the profile (its health failed, not systemd).

    The downtime runs from `down_since`, when the switch stopped the old gateway (for the state
    copy, else its restart), to the old version's first healthy answer: the time the new one spent failing its
    check counts (a rollback after 8 s unhealthy was recorded as 0.2 s).

    A product move: the new unit is stopped and its file removed (it had none before), the
    replaced unit's file put back (when an interrupted move removed it) and enabled, and the
    replaced unit is the one started and checked."""
    op = gate.op
    failed_at = _now()
    journal = gate.journal()
    problem = ""
    downtime: float | None = None
    if op.state is not None:
        # The refused release may have migrated the state on start: stopped, it comes back.
        problem = (
            gate.stop_present(op.unit, op.unit_file)
            if op.replaces is not None
            else gate.systemctl("stop", op.unit)
        )
        if not problem:
            try:
                gate.as_user(partial(restore_state, *_state_args(op)), STATE_COPY_TIMEOUT_S)
            except (OSError, shutil.Error) as exc:
                problem = f"cannot put back {op.state}: {exc}"
    try:
        if not problem:
            gate.as_user(
                partial(
                    restore_copies,
                    op.memory,
                    op.profile,
                    op.unit_file,
                    op.config,
                    op.replaces_file,
                )
            )
    except (OSError, ValueError) as exc:
        problem = f"cannot restore the unit and config: {exc}"
    if not problem and op.replaces is not None:
        gate.unit = op.replaces
        problem = gate.systemctl("daemon-reload") or gate.systemctl("enable", op.replaces)
    if not problem:
        began, problem = gate.restart()
        if not problem:
            # The version that served before gets the time it needs to come back, not only
            # what the spec allows the new one: a clawdbot start takes 60-90 s on 2 loaded
            # cores, and a spec whose start_timeout a new release's cold start overran (the
            # e2e's failed move) would otherwise call a working rollback failed.
            back = gate.wait_healthy(
                op.rollback_check, began, 0.0, max(op.start_timeout_s, ROLLBACK_START_S)
            )
            problem = back.reason
            if back.healthy_at is not None:
                downtime = back.healthy_at - down_since
    if blame:
        mark = BadVersion(op.profile, op.to_version, failed_at, reason)
        with contextlib.suppress(OSError, ValueError):
            gate.as_user(partial(mark_bad, op.memory, mark))
    if not problem:
        # The copies are kept when the rollback failed: a human (or the next run) needs them.
        with contextlib.suppress(OSError):
            gate.as_user(partial(forget_copies, op.memory, op.profile))
    return SwitchReport(
        op.profile,
        old,
        op.to_version,
        "rolled-back" if not problem else "rollback-failed",
        downtime,
        reason,
        journal,
        problem,
        failed_at,
    )


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")

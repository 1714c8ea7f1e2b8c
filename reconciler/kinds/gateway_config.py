"""Gateway config: the few keys of `<state>/<config_file>` the spec owns, nothing else.

Wants: `gateway.mode = "local"` (the gateway refuses to start otherwise), `gateway.port`,
`gateway.bind`, and `gateway.tailscale.mode = "off"` (the reconciler owns Tailscale Serve; the
gateway's own serve handling runs `tailscale serve reset` on exit, wiping every entry); for a
profile a serve entry targets, `127.0.0.1` in `gateway.trustedProxies` (Serve's requests come
from loopback with X-Forwarded-For; the user's other entries are kept); and the
keys a spec section owns in every profile's config (`reconciler.spec.sections.gateway_config`:
the docker sandbox's `agents.defaults.sandbox.*`, kinds/docker.py). Every other key, written by the user or the gateway, is kept exactly as it was; no key of our own is
ever added (the gateway rejects unknown keys and stops, docs/host-facts.md §1). The file is 0600 and
belongs to the spec's user.
Probes: the file's type, mode, owner and text, in-process. Parsed with the `json5` package: the
gateway's config is JSON5 (comments, trailing commas, unquoted keys), which `json` rejects;
`json5` is a maintained, pure-Python implementation of the whole JSON5 spec, so it accepts what
the gateway accepts and needs no compiler on the host.
Compares: the owned keys, type-strict (`"18789"` is not `18789`); then mode and owner.
Fixes: one `WriteFile` (atomic, 0600 from the first byte, the previous file kept as a 0600
backup). The document is written back as indented JSON, which is valid JSON5, in the key order
it had: comments and formatting do not survive, and the action's reason says so. When only the
mode or owner is wrong, the original text is written back unchanged (comments kept).
Secrets: tokens and passwords live in this file, so the WriteFile is `sensitive`, `changes` list
owned keys only, a value of any other key appears in no output, and a file we cannot parse is a
plan error naming the file, line and column (never its content); it is never overwritten.
"""

from __future__ import annotations

import functools
import gc
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import field
from pathlib import Path
from typing import Any

from reconciler.core.action import Action, KindPlan, PlanError, WriteFile
from reconciler.core.diff import attribute_changes
from reconciler.core.host import HostContext
from reconciler.core.kind import NEEDS_USER, NO_FACTS, Kind, register, spec_user
from reconciler.core.probe import Facts, Probe
from reconciler.facts.codec import FileTextContext, keeps_file_content
from reconciler.facts.files import PathState, backup_path
from reconciler.facts.profile_files import (
    config_probe,
    foreign_owner,
    owner_drift,
    owner_name,
    plan_profile_files,
)
from reconciler.frozen import frozen
from reconciler.gateway.addresses import config_address, service_address, state_address
from reconciler.gateway.paths import ProfilePaths, placeholder_host, profile_paths
from reconciler.spec import sections
from reconciler.spec.model import Profile, Spec

CONFIG_MODE = 0o600

# The keys the spec owns, as paths into the document, each with the value the spec wants there:
# one table, read by the plan (owned_values), the snapshot keeper (owned_config_text) and diff.
OWNED_VALUES: tuple[tuple[tuple[str, ...], Callable[[Profile], Any]], ...] = (
    (("gateway", "mode"), lambda profile: "local"),
    (("gateway", "port"), lambda profile: profile.port),
    (("gateway", "bind"), lambda profile: profile.bind),
    (("gateway", "tailscale", "mode"), lambda profile: "off"),
)
# Owned for a served profile only (a serve entry of the spec targets it): its list must hold
# 127.0.0.1, whatever else the user lists there (kept, in their order).
TRUSTED_PROXIES = ("gateway", "trustedProxies")
# Tailscale Serve connects from loopback and sends X-Forwarded-For: unless the gateway trusts
# 127.0.0.1 as a proxy, openclaw answers such a request 403 (tried with 2026.9.6, host-facts
# §8) and clawdbot 2026.1.24-3 treats it as an untrusted proxy (`gateway auth required
# behind reverse proxy` without auth; dist/gateway/server/ws-connection/message-handler.js).
# Both releases' config schemas accept `gateway.trustedProxies: string[]`.
SERVE_PROXY = "127.0.0.1"
OWNED: tuple[tuple[str, ...], ...] = (*(path for path, _ in OWNED_VALUES), TRUSTED_PROXIES)


class ConfigUnreadable(PlanError):
    """The config cannot be parsed or does not have the shape we can merge into."""


def owned_values(profile: Profile, served: bool = False) -> dict[tuple[str, ...], Any]:
    """What the spec wants at each owned key (`served`: a serve entry of the spec targets the
    profile; its `gateway.trustedProxies` must then list 127.0.0.1, other entries kept)."""
    wanted = {path: want(profile) for path, want in OWNED_VALUES}
    if served:
        wanted[TRUSTED_PROXIES] = [SERVE_PROXY]
    return wanted


def served(spec: Spec, profile: Profile) -> bool:
    """True when a serve entry of the spec targets `profile` (Tailscale Serve proxies to it)."""
    serve = spec.tailscale.serve if spec.tailscale is not None else ()
    return any(entry.profile == profile.name for entry in serve)


_POSITION = re.compile(r":(\d+) .* at column (\d+)")
_NEAR = re.compile(r" near (\d+)")
_LOCATE_WITH_JSON5_BELOW = 16 * 1024  # chars: json5 is slow (~100 s per MB), its positions exact


class _TooDeep(Exception):
    """Nested deeper than the parsers allow (pyjson5: 32 levels; json: the recursion limit)."""


class _Invalid(Exception):
    def __init__(self, at: str) -> None:
        self.at = at  # ":line:column", or "" when unknown


def _decode(text: str) -> Any:
    # A parse allocates millions of objects and no cycles: the cyclic GC would run hundreds
    # of times for nothing (a 20 MB config: 0.8 s instead of 1.9 s with it on).
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _decode_any(text)
    finally:
        if enabled:
            gc.enable()


def _decode_any(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        pass  # not plain JSON: comments, unquoted keys, trailing commas, or invalid
    except RecursionError:
        raise _TooDeep from None
    try:
        import pyjson5  # only for JSON5 proper: plain JSON never pays for the import
    except ImportError:
        # The agent shipped to a remote target leaves compiled code out (docs/remote.md): the
        # pure parser reads the config there (slower, ~8 s per MB; gateway configs are small).
        return _decode_pure(text)
    try:
        return pyjson5.decode(text)
    except pyjson5.Json5NestingTooDeep:
        raise _TooDeep from None
    except (pyjson5.Json5Exception, ValueError, RecursionError) as exc:
        where = _NEAR.search(str(exc.args[0]) if exc.args else "")
        if len(text) >= _LOCATE_WITH_JSON5_BELOW:
            raise _Invalid(_line_column(text, int(where.group(1))) if where else "") from None
    _decode_pure(text)
    raise _Invalid("")  # pyjson5 refused what json5 accepts: say so without a position


def _decode_pure(text: str) -> Any:
    """JSON5 through `json5` (pure Python): its errors carry an exact line and column."""
    import json5

    try:
        return json5.loads(text, strict=False)
    except RecursionError:
        raise _TooDeep from None
    except ValueError as exc:
        match = _POSITION.search(str(exc))
        raise _Invalid(f":{match.group(1)}:{match.group(2)}" if match else "") from None


def _line_column(text: str, offset: int) -> str:
    line = text.count("\n", 0, offset) + 1
    return f":{line}:{offset - text.rfind(chr(10), 0, offset)}"


def parse_config(text: str, where: str) -> dict[str, Any]:
    """JSON5 text -> the document (an object). An empty file is an empty object.

    Errors name the line and column only: the parser's message may quote the file's content.
    Plain JSON (what the gateway itself writes) goes through the stdlib's C parser; JSON5
    through `pyjson5` (Cython); `json5` (pure Python, ~8 s per MB) only places the error in a
    small invalid file, where its line:column has always been reported.
    """
    if not text.strip():
        return {}
    return _parse_once(text, where)


@functools.lru_cache(maxsize=16)
def _parse_once(text: str, where: str) -> dict[str, Any]:
    # Several kinds plan from the same config text; a big one is parsed once (callers only
    # read the document: `compare` copies what it changes).
    try:
        doc = _decode(text)
    except _TooDeep:
        raise ConfigUnreadable(f"{where}: nested too deeply to be a gateway config") from None
    except _Invalid as exc:
        raise ConfigUnreadable(
            f"{where}{exc.at}: not valid JSON5 (fix it by hand; a file that cannot be read is "
            "never overwritten)"
        ) from None
    if not isinstance(doc, dict):
        raise ConfigUnreadable(f"{where}: the top level is not an object")
    return doc


def _lookup(doc: Mapping[str, Any], path: tuple[str, ...], where: str) -> tuple[bool, Any]:
    """(present, value) at `path`; a non-object where an object must be is an error."""
    node: Any = doc
    for depth, key in enumerate(path):
        if not isinstance(node, dict):
            parent = ".".join(path[:depth])
            raise ConfigUnreadable(
                f"{where}: `{parent}` is not an object, so `{'.'.join(path)}` cannot be set "
                "(fix it by hand)"
            )
        if key not in node:
            return False, None
        node = node[key]
    return True, node


def _shown(value: Any) -> Any:
    """An owned key's current value as it may be displayed: scalars only, never a subtree."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return f"({type(value).__name__})"


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b


@frozen
class ConfigComparison:
    """The owned keys as they are and as wanted, and the merged document to write."""

    desired: dict[str, Any]  # dotted owned key -> wanted value
    actual: dict[str, Any]  # dotted owned key -> displayable current value (absent keys left out)
    in_sync: bool
    merged: dict[str, Any] = field(repr=False)


def compare(
    doc: dict[str, Any],
    profile: Profile,
    where: str,
    sections_own: Mapping[tuple[str, ...], Any] | None = None,
    proxied: bool = False,
) -> ConfigComparison:
    """Pure: the parsed document + the profile (+ the keys the spec's sections own, e.g. the
    docker sandbox's; `proxied`: Tailscale Serve proxies to it) -> what differs and the merged
    document."""
    wanted = owned_values(profile, proxied) | dict(sections_own or {})
    merged = dict(doc)  # copied along the owned paths only: a 20 MB config is not deep-copied
    desired: dict[str, Any] = {}
    actual: dict[str, Any] = {}
    in_sync = True
    for path, value in wanted.items():
        present, current = _lookup(doc, path, where)
        if path == TRUSTED_PROXIES:
            # Only 127.0.0.1 is ours: the user's own proxies stay, in their order.
            others = current if present and isinstance(current, list) else []
            value = others if SERVE_PROXY in others else [*others, SERVE_PROXY]
        name = ".".join(path)
        desired[name] = value
        if present:
            actual[name] = _shown(current)
        if not (present and _same(current, value)):
            in_sync = False
            node = merged
            for key in path[:-1]:
                child = node.get(key)
                node[key] = dict(child) if isinstance(child, dict) else {}
                node = node[key]
            node[path[-1]] = value
    return ConfigComparison(desired, actual, in_sync, merged)


def render_config(doc: Mapping[str, Any]) -> str:
    """The document as indented JSON (valid JSON5), keys in their original order."""
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


# --- what a snapshot keeps of a config ----------------------------------------------------------

UNREADABLE_CONFIG = "not valid JSON5 (its content is not recorded in snapshots)"
_NOT_AN_OBJECT = "(not an object)"


def owned_config_text(text: str) -> tuple[str | None, str | None]:
    """A gateway config reduced to the keys the spec owns: (text, None) or (None, error).

    Only the owned paths survive (`gateway.mode/port/bind/tailscale.mode/trustedProxies`, and
    those a spec section may own, `sections.gateway_config_paths()`): their scalar values, a
    list of short strings as is (proxy addresses),
    an empty object or list where one stands (the plan only shows its type), a placeholder
    where a parent is not an object (the plan only says so). Tokens, passwords and every other
    key are gone, and this kind plans the same owned-key changes from the result.
    """
    try:
        doc = parse_config(text, "")
    except ConfigUnreadable:
        return None, UNREADABLE_CONFIG
    kept: dict[str, Any] = {}
    for path in (*OWNED, *sections.gateway_config_paths()):
        _keep_path(doc, kept, path)
    return render_config(kept), None


def _keep_path(source: dict[str, Any], target: dict[str, Any], path: tuple[str, ...]) -> None:
    key = path[0]
    if key not in source:
        return
    value = source[key]
    if len(path) == 1:
        if isinstance(value, list) and all(isinstance(v, str) and len(v) < 100 for v in value):
            target[key] = list(value)  # trustedProxies: addresses, no secret
        else:
            target[key] = type(value)() if isinstance(value, dict | list) else value
    elif not isinstance(value, dict):
        target[key] = _NOT_AN_OBJECT
    else:
        child = target.setdefault(key, {})
        if isinstance(child, dict):
            _keep_path(value, child, path[1:])


@keeps_file_content(needs=NEEDS_USER)
def _config_text(
    context: FileTextContext, path: Path, text: str
) -> tuple[str | None, str | None] | None:
    """Snapshots keep of each profile's gateway config the owned keys only."""
    host, spec = context.host, context.spec
    if all(profile_paths(spec, p, host).config != path for p in spec.profiles):
        return None
    return owned_config_text(text)


@register(40)
class GatewayConfigKind(Kind):
    name = "profile.config"
    needs = NEEDS_USER

    def placeholders(self, spec: Spec, host: HostContext) -> Iterable[Action]:
        for profile in spec.profiles:
            paths = profile_paths(spec, profile, host)
            fresh = compare(
                {}, profile, str(paths.config), sections.gateway_config(spec), served(spec, profile)
            )
            yield _write(paths, fresh, render_config(fresh.merged), "create", host, ())

    def desired(self, spec: Spec, home: Path) -> Mapping[str, Any]:
        """Every profile's config file and the values of the keys the spec owns in it."""
        host = placeholder_host(spec, home)
        return {
            "profiles": {
                p.name: {
                    "bind": p.bind,
                    "config_file": str(profile_paths(spec, p, host).config),
                    "config": {
                        ".".join(key): value
                        for key, value in (
                            owned_values(p, served(spec, p)) | sections.gateway_config(spec)
                        ).items()
                    },
                }
                for p in spec.profiles
            }
        }

    def probes(
        self, spec: Spec, host: HostContext, found: Facts = NO_FACTS
    ) -> Iterable[Probe[Any]]:
        for profile in spec.profiles:
            yield config_probe(profile_paths(spec, profile, host))

    def plan(self, spec: Spec, host: HostContext, facts: Facts) -> KindPlan:
        return plan_profile_files(
            spec,
            host,
            facts,
            plan_one=plan_config,
            address_of=config_address,
            probe_of=config_probe,
        )


def plan_config(spec: Spec, profile: Profile, host: HostContext, facts: Facts) -> Action | None:
    """The action that brings one profile's config in line, or None (raises ConfigUnreadable)."""
    paths = profile_paths(spec, profile, host)
    where = str(paths.config)
    user = spec_user(host)
    found = facts.get(config_probe(paths))
    after_state = (state_address(profile.name),)  # kept when the plan creates or fixes it
    if found.kind == "missing":
        fresh = compare({}, profile, where, sections.gateway_config(spec), served(spec, profile))
        return _write(paths, fresh, render_config(fresh.merged), "create", host, after_state)
    if found.kind != "file":
        raise ConfigUnreadable(
            f"{where} is {found.described}, not a regular file (it is not followed)"
        )
    if found.text is None:
        raise ConfigUnreadable(f"cannot read {where}: {found.error}; it is never overwritten")
    doc = parse_config(found.text, where)
    result = compare(doc, profile, where, sections.gateway_config(spec), served(spec, profile))
    if foreign_owner(config_address(profile.name), found, host):
        file_ok = True  # not root: its mode and owner are reported, not ours to fix
    else:
        file_ok = found.mode == CONFIG_MODE and not owner_drift(found, host)
    if result.in_sync and file_ok:
        return None
    if result.in_sync:
        # Only the mode or owner is wrong: write the very same text back (comments kept).
        return _write(
            paths,
            result,
            found.text,
            "update",
            host,
            after_state,
            found=found,
            reason=f"{where} must be {CONFIG_MODE:04o}, owned by {user.name} (it holds "
            "secrets); content unchanged",
        )
    content = render_config(result.merged)
    lost = (
        ""
        if content == found.text
        else "; it is rewritten as JSON: comments and formatting are not kept"
    )
    return _write(
        paths,
        result,
        content,
        "update",
        host,
        after_state,
        found=found,
        reason=f"the spec owns {', '.join(result.desired)} in {where}{lost} "
        f"(previous file kept as {backup_path(paths.config).name}, {CONFIG_MODE:04o})",
    )


def _write(
    paths: ProfilePaths,
    result: ConfigComparison,
    content: str,
    kind: str,
    host: HostContext,
    after: tuple[str, ...],
    *,
    found: PathState | None = None,
    reason: str | None = None,
) -> Action:
    desired = dict(result.desired)
    actual = dict(result.actual)
    user = host.user.name if host.user else host.user_name
    desired["mode"] = f"{CONFIG_MODE:04o}"
    if host.is_root:  # anyone else writes the file as themselves
        desired["owner"] = user
    if found is not None:
        actual["mode"] = f"{found.mode or 0:04o}"
        if host.is_root:
            actual["owner"] = owner_name(found, host)
    return Action(
        config_address(paths.profile),
        "create" if kind == "create" else "update",
        reason or f"profile {paths.profile}'s gateway reads {paths.config}",
        (WriteFile(paths.config, content, CONFIG_MODE, owner=user, sensitive=True),),
        changes=attribute_changes(desired, actual),
        # A new config reaches a running gateway only by a restart; after the state root.
        triggers=(service_address(paths.profile),) if host.user else (),
        after=after,
    )

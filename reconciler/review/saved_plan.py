"""Saved plans: `plan --out FILE` now, `apply FILE` later, and only if nothing changed between.

A saved plan is the JSON plan document (format_version 1) plus a `freshness` section: the spec
file's path and sha256, the hostname and the invoker the plan was made for, and a fingerprint
of every action as planned. Apply re-probes and re-plans; `check_fresh` then refuses unless the
spec file is byte-identical and the new plan does exactly what the saved one said.

The fingerprint of an action covers what it does: its address and kind, the owned attributes
before and after (sensitive ones as `(sensitive)`), every operation (the argv as the command
is defined, file paths, modes and owners, the sha256 of a non-sensitive file's content, ports),
the unit diff, its dependencies and whether it is blocked. It does not cover the wording of
reasons, and it never covers a secret: it is computed from the redacted plan, and sensitive
file contents are not hashed at all (a hash of a low-entropy secret could be guessed).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from reconciler.bounded import loads_json, read_bounded
from reconciler.core.action import Action, Argv, Digest, Mode, Operation, walk_fields
from reconciler.core.plan import Plan
from reconciler.frozen import frozen
from reconciler.render.json_plan import FORMAT_VERSION
from reconciler.render.plan_context import PlanContext
from reconciler.render.redaction import redact_action, redact_plan

FRESHNESS = "freshness"
# How many differing addresses a stale-plan message names before it says "and N more".
SHOWN_DIFFERENCES = 12

MAX_PLAN_BYTES = 256 * 1024 * 1024  # a 2,000-profile plan is far below this


class SavedPlanInvalid(Exception):
    """The file is not a saved plan this version can read."""


class StalePlan(Exception):
    """The saved plan no longer describes what apply would do (or is for another host)."""


@frozen
class SpecLocation:
    """Where the spec was when the plan was made, so `apply` finds it from any folder: in the
    git work tree of the same repository (a clone on the host), or at the same absolute path."""

    absolute: str | None = None  # on the machine the plan was made on
    work_tree_path: str | None = None  # relative to the work tree's top (POSIX)
    repository: str | None = None  # the repository's root commit(s): the same in every clone


@frozen
class Freshness:
    """What a saved plan was made from, to compare with a new plan at apply time."""

    spec_path: str | None
    spec_sha256: str | None
    hostname: str
    invoker: str
    fingerprint: str  # over every action's digest, in apply order
    actions: tuple[tuple[str, str], ...]  # (address, digest), in apply order
    spec_location: SpecLocation | None = None


@frozen
class SavedPlan:
    """A saved plan read back: the freshness data plus the whole document (for display)."""

    path: Path
    freshness: Freshness
    document: Mapping[str, Any]

    @property
    def spec_path(self) -> str | None:
        """The spec file as named when the plan was made (relative to that working directory)."""
        return self.freshness.spec_path

    @property
    def summary(self) -> str:
        return str(self.document.get("summary", {}).get("text", ""))


# --- fingerprints (pure) -------------------------------------------------------------------------


def canonical_json(value: Any) -> str:
    """One spelling of a JSON value: sorted keys, no whitespace, so equal data hash equal."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def operation_intent(op: Operation) -> dict[str, Any]:
    """What an operation does, independent of who renders it (no sudo/runuser prefix).

    Generated from the operation's own field list (`Operation.fields`), as the plan document is.
    """

    def intent(value: Any) -> Any:
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, Mode):
            return value.bits
        if isinstance(value, Argv):
            return list(value.command.argv)
        if isinstance(value, Digest):
            return None if value.text is None else sha256_text(value.text)
        return value

    return walk_fields(op, intent, fingerprint=True)


def action_intent(action: Action) -> dict[str, Any]:
    """The part of an action a reviewer approves (see the module docstring)."""
    shown = redact_action(action)
    return {
        "address": shown.address,
        "kind": shown.kind,
        "blocked": shown.blocked is not None,
        "depends_on": list(shown.depends_on),
        "changes": [[c.path, c.before, c.after, c.sensitive] for c in shown.changes],
        "diff": shown.diff,
        "operations": [operation_intent(op) for op in shown.operations],
    }


def action_digests(plan: Plan) -> tuple[tuple[str, str], ...]:
    """(address, sha256 of the action's intent) for every action, in apply order."""
    return tuple((a.address, sha256_text(canonical_json(action_intent(a)))) for a in plan.actions)


def plan_fingerprint(digests: Sequence[tuple[str, str]]) -> str:
    return sha256_text(canonical_json([list(d) for d in digests]))


def freshness(plan: Plan, context: PlanContext, location: SpecLocation | None = None) -> Freshness:
    """The freshness data of a plan made in `context` (from the spec at `location`)."""
    digests = action_digests(plan)
    return Freshness(
        spec_path=context.spec_path,
        spec_sha256=context.spec_sha256,
        hostname=context.hostname,
        invoker=context.invoker,
        fingerprint=plan_fingerprint(digests),
        actions=digests,
        spec_location=location,
    )


# --- the file ------------------------------------------------------------------------------------


def saved_plan_document(document: Mapping[str, Any], fresh: Freshness) -> dict[str, Any]:
    """The plan document with its freshness section: what `plan --out` writes."""
    return {
        **document,
        FRESHNESS: {
            "spec_path": fresh.spec_path,
            "spec_sha256": fresh.spec_sha256,
            "hostname": fresh.hostname,
            "invoker": fresh.invoker,
            "fingerprint": fresh.fingerprint,
            "actions": [{"address": a, "sha256": d} for a, d in fresh.actions],
            **(
                {"spec_location": dataclasses.asdict(fresh.spec_location)}
                if fresh.spec_location is not None
                else {}
            ),
        },
    }


SNAPSHOT_KIND = "reconciler-snapshot"  # review/snapshot.py's document kind
_SAVE_ONE = "save one with `reconciler plan SPEC --out FILE` and apply that file"


def reads_as_document(path: Path) -> bool:
    """True when `apply` must read `path` as one of our JSON documents, not as a YAML spec.

    A saved plan, a plan without freshness (`plan --format json`), a snapshot, or a JSON object
    cut short (a truncated plan): `load_saved_plan` then says which it is and what to do,
    instead of a dump of spec-field errors.
    """
    try:
        # Bounded, never blocking: a FIFO, a device or a huge file is not a plan (the spec
        # loader then says what it is).
        data = read_bounded(path, MAX_PLAN_BYTES)
    except OSError:
        return False
    text = data[: 1 << 16].lstrip()
    if not text.startswith(b"{"):
        return False  # YAML specs start with a key or a comment
    try:
        doc = loads_json(data, source=path)
    except (OSError, ValueError):
        return True  # starts like a JSON object but is not one: damaged or truncated
    return isinstance(doc, dict) and (
        "format_version" in doc or FRESHNESS in doc or doc.get("kind") == SNAPSHOT_KIND
    )


def is_saved_plan(path: Path) -> bool:
    """True when `path` holds a saved plan (a JSON object with a freshness section), not a spec.

    For `apply`, which takes either a spec or a saved plan as its argument.
    """
    try:
        doc = loads_json(read_bounded(path, MAX_PLAN_BYTES), source=path)
    except (OSError, ValueError):  # a FIFO, /dev/zero, too large or too deep: not a plan
        return False
    return isinstance(doc, dict) and FRESHNESS in doc and "format_version" in doc


def load_saved_plan(path: Path) -> SavedPlan:
    """Read a saved plan; SavedPlanInvalid says clearly what else the file is."""
    try:
        data = read_bounded(path, MAX_PLAN_BYTES)
        doc = loads_json(data, source=path)
    except OSError as exc:
        raise SavedPlanInvalid(f"{path}: cannot read the saved plan: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        body = data.strip()
        if body.startswith(b"{") and not body.endswith(b"}"):
            raise SavedPlanInvalid(
                f"{path}: a plan document cut short (a JSON object that never closes; the "
                f"first error is at line {exc.lineno}, column {exc.colno}: truncated?); "
                f"{_SAVE_ONE} again"
            ) from None
        raise SavedPlanInvalid(
            f"{path}: not a saved plan: not JSON (line {exc.lineno}, column {exc.colno}); "
            "save one with `reconciler plan SPEC --out FILE`"
        ) from None
    except ValueError:  # not UTF-8
        raise SavedPlanInvalid(
            f"{path}: not a saved plan: not JSON text; save one with "
            "`reconciler plan SPEC --out FILE`"
        ) from None
    if isinstance(doc, dict) and doc.get("kind") == SNAPSHOT_KIND:
        raise SavedPlanInvalid(
            f"{path}: this is a snapshot (from `reconciler probe`), not a plan: plan against it "
            f"with `reconciler plan SPEC --against {path} --out PLAN`, review PLAN, then apply "
            "PLAN on the host"
        )
    if not isinstance(doc, dict) or "format_version" not in doc:
        raise SavedPlanInvalid(
            f"{path}: not a saved plan (no format_version); save one with "
            "`reconciler plan SPEC --out FILE`"
        )
    version = doc["format_version"]
    if version != FORMAT_VERSION:
        raise SavedPlanInvalid(
            f"{path}: saved plan format_version {version!r} is not supported (this reconciler "
            f"reads format_version {FORMAT_VERSION!r}): make the plan again with this version"
        )
    section = doc.get(FRESHNESS)
    if not isinstance(section, dict):
        raise SavedPlanInvalid(
            f"{path}: this is a plan without freshness data (from `plan --format json`?), "
            "which apply cannot check against the host; " + _SAVE_ONE
        )
    saved = SavedPlan(path, _freshness(section, path), doc)
    check_self_consistent(saved)
    return saved


def _freshness(section: Mapping[str, Any], path: Path) -> Freshness:
    def text(key: str, *, optional: bool = False) -> Any:
        value = section.get(key)
        if isinstance(value, str) or (optional and value is None):
            return value
        raise SavedPlanInvalid(f"{path}: freshness.{key} is missing or not a string")

    actions = section.get("actions")
    if not isinstance(actions, list) or not all(
        isinstance(a, dict)
        and isinstance(a.get("address"), str)
        and isinstance(a.get("sha256"), str)
        for a in actions
    ):
        raise SavedPlanInvalid(f"{path}: freshness.actions must list {{address, sha256}} objects")
    return Freshness(
        spec_location=_location(section.get("spec_location"), path),
        spec_path=text("spec_path", optional=True),
        spec_sha256=text("spec_sha256", optional=True),
        hostname=text("hostname"),
        invoker=text("invoker"),
        fingerprint=text("fingerprint"),
        actions=tuple((a["address"], a["sha256"]) for a in actions),
    )


def _location(data: Any, path: Path) -> SpecLocation | None:
    if data is None:
        return None  # a plan saved before spec locations were recorded
    keys = [f.name for f in dataclasses.fields(SpecLocation)]
    if (
        not isinstance(data, dict)
        or not all(isinstance(data.get(k), str | None) for k in keys)
        or set(data) - set(keys)
    ):
        raise SavedPlanInvalid(
            f"{path}: freshness.spec_location must be an object of {', '.join(keys)} (strings)"
        )
    return SpecLocation(**data)


# --- the file is what was made ------------------------------------------------------------------

EDITED = "the plan file was edited after it was made"


class EditedPlan(StalePlan):
    """The saved plan's visible content is not what its fingerprint stands for."""


def check_self_consistent(saved: SavedPlan) -> None:
    """Refuse a saved plan whose parts disagree: the fingerprint and the digests it is made of,
    the digests' addresses and the actions shown. Raises SavedPlanInvalid saying what differs."""
    fresh, path = saved.freshness, saved.path
    computed = plan_fingerprint(fresh.actions)
    if computed != fresh.fingerprint:
        raise SavedPlanInvalid(
            f"{path}: {EDITED}: freshness.fingerprint is {_short_hash(fresh.fingerprint)}, but "
            f"the action digests listed with it hash to {_short_hash(computed)}; "
            f"{_SAVE_ONE} again"
        )
    actions = saved.document.get("actions")
    if not isinstance(actions, list) or not all(isinstance(a, dict) for a in actions):
        raise SavedPlanInvalid(f"{path}: {EDITED}: `actions` is not a list of objects")
    shown = [a.get("address") for a in actions]
    listed = [address for address, _ in fresh.actions]
    if shown != listed:
        raise SavedPlanInvalid(
            f"{path}: {EDITED}: {_list_difference(shown, listed)}; {_SAVE_ONE} again"
        )


def _list_difference(shown: list[Any], listed: list[str]) -> str:
    for i, (a, b) in enumerate(zip(shown, listed, strict=False)):
        if a != b:
            return f"actions[{i}] shows {a!r}, the fingerprint covers {b!r} there"
    return f"the file shows {len(shown)} action(s), the fingerprint covers {len(listed)}"


# Wording a fingerprint leaves out on purpose (reasons, warnings and why a step is blocked may
# be worded from facts that vary, a command's description and refusal depend on who renders it).
_WORDING = frozenset({"reason", "warning", "description", "cannot_run", "symbol"})


def visible_differences(saved_actions: Sequence[Mapping[str, Any]], plan: Plan) -> list[str]:
    """Where the actions a saved plan shows differ from what `plan` would do (empty: none).

    Everything shown is compared but wording (`_WORDING`) and the sudo/runuser prefix of an
    argv (who applies decides it; the argv must end with the command as planned).
    """
    from reconciler.render.json_plan import action_entry

    # As the file holds them: through JSON (tuples become lists).
    planned = json.loads(
        json.dumps([action_entry(a, lambda c: c.argv) for a in redact_plan(plan).actions])
    )
    notes: list[str] = []
    for i, (shown, made) in enumerate(zip(saved_actions, planned, strict=False)):
        where = f"actions[{i}] ({made['address']})"
        notes += _entry_differences(where, shown, made)
    if len(saved_actions) != len(planned):
        notes.append(f"the file shows {len(saved_actions)} action(s), the plan has {len(planned)}")
    return notes


def _entry_differences(where: str, shown: Mapping[str, Any], made: Mapping[str, Any]) -> list[str]:
    notes: list[str] = []
    for key in sorted(set(shown) | set(made)):
        if key in _WORDING:
            continue
        a, b = shown.get(key), made.get(key)
        if key == "blocked":
            a, b = a is not None, b is not None
        if key == "operations" and isinstance(a, list) and isinstance(b, list):
            for j, (op_a, op_b) in enumerate(zip(a, b, strict=False)):
                if isinstance(op_a, dict):
                    notes += _entry_differences(f"{where}.operations[{j}]", op_a, op_b)
                else:
                    notes.append(f"{where}.operations[{j}] is not an object")
            if len(a) != len(b):
                notes.append(f"{where}.operations: {len(a)} in the file, {len(b)} planned")
            continue
        if key == "argv" and _same_command(a, b):
            continue
        if a != b:
            notes.append(f"{where}.{key} is {_show(a)} in the file, {_show(b)} in the plan")
    return notes


def _same_command(shown: Any, argv: Any) -> bool:
    """`shown` is `argv` as some invoker would run it: as is, after `sudo -n`, or after
    `runuser -u USER -- env NAME=VALUE...` (root) or `sudo -n -u USER -- env NAME=VALUE...`
    (an admin account acting as the user)."""
    if not isinstance(shown, list) or not isinstance(argv, list):
        return False
    n = len(argv)
    if len(shown) < n or shown[len(shown) - n :] != argv:
        return False
    prefix = shown[: len(shown) - n]
    if prefix in ([], ["sudo", "-n"]):
        return True
    for become in (["runuser", "-u"], ["sudo", "-n", "-u"]):
        k = len(become)
        if (
            prefix[:k] == become
            and prefix[k + 1 : k + 3] == ["--", "env"]
            and all(isinstance(w, str) and "=" in w for w in prefix[k + 3 :])
        ):
            return True
    return False


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 400 else text[:397] + "..."


# --- the check -----------------------------------------------------------------------------------


def check_fresh(
    saved: SavedPlan,
    spec_path: str | Path | None,
    spec_sha256: str | None,
    hostname: str,
    fresh_plan: Plan,
    *,
    invoker: str | None = None,
) -> None:
    """Raise StalePlan unless `fresh_plan` (just probed) is the plan that was saved.

    In order: another host; the spec file changed (sha256); the new plan does something else
    (the host changed since, or whoever applies is not whoever planned).
    """
    saved_fresh = saved.freshness
    if _short(saved_fresh.hostname) != _short(hostname):
        raise StalePlan(
            f"Saved plan is for host {saved_fresh.hostname}, this is {hostname}: "
            "make a plan on this host (or against its snapshot)"
        )
    again = f"Run `reconciler plan {spec_path or saved_fresh.spec_path or 'SPEC'} --out {saved.path}` again and review the new plan."
    if saved_fresh.spec_sha256 != spec_sha256:
        raise StalePlan(
            f"Saved plan is stale: the spec changed since the plan was made "
            f"({spec_path or saved_fresh.spec_path}: sha256 {_short_hash(saved_fresh.spec_sha256)} "
            f"in the plan, {_short_hash(spec_sha256)} now). {again}"
        )
    digests = action_digests(fresh_plan)
    if plan_fingerprint(digests) == saved_fresh.fingerprint:
        edits = visible_differences(saved.document.get("actions") or [], fresh_plan)
        if edits:
            more = len(edits) - SHOWN_DIFFERENCES
            raise EditedPlan(
                f"Saved plan refused: {EDITED}: what it shows is not what it would run: "
                + "; ".join(edits[:SHOWN_DIFFERENCES])
                + (f"; and {more} more" if more > 0 else "")
                + f". {again}"
            )
        return
    who = ""
    if invoker is not None and invoker != saved_fresh.invoker:
        who = (
            f" (the plan was made as {saved_fresh.invoker}, this runs as {invoker}; "
            "what a plan does depends on who applies it)"
        )
    raise StalePlan(
        f"Saved plan is stale: the host changed since the plan was made{who}: "
        f"{describe_differences(saved_fresh.actions, digests)}. {again}"
    )


def describe_differences(saved: Sequence[tuple[str, str]], fresh: Sequence[tuple[str, str]]) -> str:
    """`tailscale.serve[443] (changed), linger (no longer planned), x (newly planned)`."""
    before = dict(saved)
    after = dict(fresh)
    notes: list[str] = []
    for address, digest in saved:
        if address not in after:
            notes.append(f"{address} (no longer planned)")
        elif after[address] != digest:
            notes.append(f"{address} (changed)")
    notes.extend(f"{address} (newly planned)" for address, _ in fresh if address not in before)
    if not notes:
        if [a for a, _ in saved] != [a for a, _ in fresh]:
            order = ", ".join(a for a, _ in fresh)
            return f"the same steps, in another order (now: {order})"
        return "no step differs, yet the fingerprints do (the plan file was edited?)"
    more = len(notes) - SHOWN_DIFFERENCES
    shown = ", ".join(notes[:SHOWN_DIFFERENCES])
    return shown + (f", and {more} more" if more > 0 else "")


def _short(hostname: str) -> str:
    # Like the spec's host check: the short name decides (vm102 == vm102.tail1234.ts.net).
    return hostname.split(".")[0]


def _short_hash(value: str | None) -> str:
    return value[:12] if value else "(none)"

"""The `reconcile:` section's model: the unattended timer, its git source and its command."""

from __future__ import annotations

from dataclasses import field
from typing import Any

from reconciler.frozen import frozen
from reconciler.spec.duration import parse_duration

# Where the section is in the document, and in the typed Spec (the same names).
MOUNT = ("reconcile",)


@frozen
class Timer:
    """The unattended reconcile timer (a systemd user timer running `reconciler apply`)."""

    enabled: bool = False
    interval_s: int = 900
    on_boot_s: int = 120
    randomized_delay_s: int = 60


@frozen
class GitSource:
    """Apply the spec as committed at `ref` of the clone at `path`, never uncommitted edits."""

    path: str
    ref: str = "main"


@frozen
class Reconcile:
    timer: Timer = field(default_factory=Timer)
    source: GitSource | None = None
    # The program the timer runs (argv prefix before `apply <spec> ...`). None: the installed
    # `reconciler` entry point beside the interpreter that plans, which must not be a scratch one.
    command: tuple[str, ...] | None = None


def _seconds(value: str | float) -> int:
    return parse_duration(value) if isinstance(value, str) else int(value)


_TIMER_FIELDS = {
    "interval": "interval_s",
    "on_boot": "on_boot_s",
    "randomized_delay": "randomized_delay_s",
}


def build(section: dict[str, Any]) -> Reconcile:
    """Validated `reconcile:` data -> Reconcile (absent fields keep the defaults)."""
    timer = section.get("timer", {})
    fields: dict[str, Any] = {"enabled": timer["enabled"]} if "enabled" in timer else {}
    fields.update(
        (model, _seconds(timer[key])) for key, model in _TIMER_FIELDS.items() if key in timer
    )
    source = section.get("source")
    command = section.get("command")
    return Reconcile(
        timer=Timer(**fields),
        source=GitSource(path=source["git"], **({"ref": source["ref"]} if "ref" in source else {}))
        if source
        else None,
        command=tuple(command) if command is not None else None,
    )

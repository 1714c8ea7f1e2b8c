"""The `reconcile:` section's semantic rules and its duration fields."""

from __future__ import annotations

from collections.abc import Iterator

from reconciler.spec.rules import Issue, Rule, get
from reconciler.spec.yaml_source import Document, show

# (path, may it be zero?) of the section's durations (semantic.durations checks them).
DURATIONS: tuple[tuple[tuple[str, ...], bool], ...] = (
    (("reconcile", "timer", "interval"), False),
    (("reconcile", "timer", "on_boot"), False),
    (("reconcile", "timer", "randomized_delay"), True),
)

# What the timer adds after reconcile.command itself (reconcile_timer.exec_argv).
TIMER_WORDS = ("apply", "--yes", "--non-interactive", "--lock-timeout", "--git-ref")


def reconcile_command(doc: Document) -> Iterator[Issue]:
    """reconcile.command names the program only: the timer adds `apply <spec>` and its options."""
    command = get(doc.data, "reconcile", "command")
    if not isinstance(command, list):
        return
    for index, word in enumerate(command[1:], start=1):  # [0] is the program's path
        if isinstance(word, str) and word.split("=", 1)[0] in TIMER_WORDS:
            yield Issue(
                ("reconcile", "command", index),
                f"{show(word)} is added by the timer itself",
                "end reconcile.command with the program, e.g. [/opt/reconciler/bin/reconciler] "
                "or [/path/to/python, -m, reconciler]: the timer adds `apply <spec> --yes ...`",
            )


RULES: tuple[Rule, ...] = (reconcile_command,)

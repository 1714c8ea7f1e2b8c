"""Specs and outcomes shared by the unattended tests."""

from __future__ import annotations

from pathlib import Path

from reconciler.spec.model import Spec
from reconciler.unattended.logs import ActionLog
from reconciler.unattended.runs import ApplyOutcome

SPEC_TEXT = """\
apiVersion: reconciler/v1
host:
  name: vm102
  user: user
profiles:
  personal:
    port: 18789
"""

# An unknown field: the loader refuses it with file:line:col.
BAD_SPEC_TEXT = SPEC_TEXT + "    colour: blue\n"


def write_spec(directory: Path, text: str = SPEC_TEXT, name: str = "vm102.yaml") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(text)
    return path


class Recorder:
    """A do_apply that remembers the specs it was given and returns a fixed outcome."""

    def __init__(self, outcome: ApplyOutcome | None = None) -> None:
        self.outcome = outcome or ApplyOutcome("converged", applied=1, drift=("linger",))
        self.specs: list[Spec] = []

    def __call__(self, spec: Spec, log: ActionLog | None) -> ApplyOutcome:
        self.specs.append(spec)
        return self.outcome

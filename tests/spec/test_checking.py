"""`validate` checks a spec without building the typed model (spec/checking.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SEED = Path(__file__).resolve().parents[2] / "specs" / "vm102.yaml"

SCRIPT = """
import sys
from reconciler.cli import main
sys.argv = ["reconciler", "validate", sys.argv[1]]
try:
    main()
except SystemExit as end:
    print("exit", end.code)
heavy = ("reconciler.spec.model", "reconciler.spec.loader", "nodesemver", "jsonschema")
print(sorted(m for m in heavy if m in sys.modules))
"""


def test_validate_imports_neither_the_model_nor_the_npm_port_nor_jsonschema() -> None:
    env = {**os.environ, "RECONCILER_NO_CACHE": "1"}
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(SEED)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert out[-2:] == ["exit 0", "[]"], out

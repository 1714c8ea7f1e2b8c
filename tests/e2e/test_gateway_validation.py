"""The real gateway's own config validation accepts what the reconciler writes (unknown keys stop
it: docs/host-facts.md §1). No container: the installed package the e2e suite caches, run by
its own node."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from reconciler.kinds.gateway_config import compare
from reconciler.spec.model import Docker, Profile
from reconciler.spec.sections.docker.model import Sandbox

pytestmark = pytest.mark.e2e

VALIDATE = """
const { validateConfigObject } = await import(process.argv[2] + "/config/validation.js");
const r = validateConfigObject(JSON.parse(process.argv[3]));
console.log(r.ok ? "ok" : "refused");
"""


def test_the_real_gateway_accepts_the_sandbox_keys(tmp_path: Path, real_gateway_dir: Path) -> None:
    """The docker section's `agents.defaults.sandbox` keys pass the gateway's validation, and a
    key of the wrong name is refused (so the check can fail)."""
    dist = real_gateway_dir / "node_modules/clawdbot/dist"
    node = real_gateway_dir / "node_modules/.bin/node"
    script = tmp_path / "validate.mjs"
    script.write_text(VALIDATE)
    sandbox = Sandbox(mode="non-main", scope="session", workspace_access="ro")
    written = compare(
        {}, Profile("ops", 18809), "", Docker("required", sandbox=sandbox).gateway_config()
    )
    wrong = json.loads(json.dumps(written.merged))
    wrong["agents"]["defaults"]["sandbox"]["workspace_access"] = "ro"

    def verdict(doc: dict[str, Any]) -> str:
        argv = [str(node), str(script), str(dist), json.dumps(doc)]
        return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True).stdout

    assert verdict(written.merged).strip() == "ok"
    assert verdict(wrong).strip() == "refused"

"""An admin account's login runs the agent as root through sudo (the parts that need no second
account; the e2e suite logs in as root, the gateway user and a sudo admin for real)."""

from __future__ import annotations

import base64
from pathlib import Path

from reconciler.remote.elevate import _spec_user, elevated_argv, sudoers_line

REPO = Path(__file__).resolve().parents[2]


def _request(spec: bytes) -> dict[str, object]:
    return {"spec": "spec.yaml", "files": {"spec.yaml": base64.b64encode(spec).decode()}}


def test_the_spec_user_is_read_from_the_request() -> None:
    assert _spec_user(_request((REPO / "specs" / "vm102.yaml").read_bytes())) == "user"
    assert _spec_user(_request(b"host: [")) is None
    assert _spec_user({"files": {}}) is None


def test_the_agent_again_as_root_is_an_argv_and_the_rule_names_the_interpreter() -> None:
    argv = elevated_argv("/usr/bin/python3", "/home/admin/.cache/reconciler/agent/x.pyz")
    assert argv[:5] == ["sudo", "-n", "--", "/usr/bin/python3", "-I"]
    assert argv[-1] == "/home/admin/.cache/reconciler/agent/x.pyz"
    assert "sh" not in argv and "-c" in argv  # python's -c, never a shell
    assert (
        sudoers_line("admin", "/usr/bin/python3") == "admin ALL=(root) NOPASSWD: /usr/bin/python3"
    )

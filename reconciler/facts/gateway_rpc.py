"""The gateway's own view of itself, through its CLI: `gateway health` and `devices list`.

docs/host-facts.md §1, §10: the CLI talks to a running gateway over its websocket
(its local one, `ws://127.0.0.1:<port>`, the port from `<PREFIX>GATEWAY_PORT`). It is run as the
spec's user with the profile's environment (profile, state dir, config path and port as `env`
arguments; the token, a secret, from the profile's env file, which the runner reads and never
puts in argv).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler.core.command import Command, CommandResult
from reconciler.core.host import HostContext
from reconciler.core.probe import Probe
from reconciler.facts.codec import Redaction, recorded
from reconciler.facts.programs import find_as_user, locate
from reconciler.frozen import frozen
from reconciler.gateway.paths import profile_paths, uses_token_file
from reconciler.spec.naming import product_names

if TYPE_CHECKING:
    from reconciler.spec.model import Profile, Spec


@frozen
class GatewayCall:
    """How to run the gateway's CLI for one profile: program, environment, port."""

    program: str  # absolute path
    port: int
    env: tuple[tuple[str, str], ...]  # non-secret: profile, state dir, config path
    token_file: Path | None = None  # the profile's env file holding the token (auth: token)

    def command(self, *args: str, timeout_s: float = 20, mutating: bool = False) -> Command:
        """`env K=V... <program> ARGS`, as the spec's user: the CLI's local gateway, whose
        port `env` carries (`<PREFIX>GATEWAY_PORT`). No `--url`: openclaw 2026.9.x refuses a
        `--url` whose token is not in argv (kinds/_switch.py health_command says why)."""
        return Command(
            ("env", *(f"{k}={v}" for k, v in self.env), self.program, *args),
            scope="user",
            mutating=mutating,
            timeout_s=timeout_s,
            env_file=self.token_file,
        )


def _versioned_cli(spec: Spec, host: HostContext, profile: Profile) -> str | None:
    """With versioned installs: the CLI of the profile's own version (npm's link in its
    prefix), when installed; reads the machine (a use case's lookup, like `locate`)."""
    from reconciler.gateway.versions import install_dir, prefix_path, profile_version, versioned

    version = profile_version(spec, profile)
    if not versioned(spec) or version is None or host.user is None:
        return None
    names = product_names(spec.product)
    link = install_dir(prefix_path(spec, host.user.home), version) / "node_modules/.bin"
    cli = link / names.command
    return find_as_user(str(cli), (), host)  # the user's prefix: looked at as the user


def _pinned_node(spec: Spec, host: HostContext, profile: Profile) -> Path | None:
    """The installed node the profile's unit runs (gateway/node.py), None: the one on PATH."""
    from reconciler.gateway.node import node_binary, profile_node
    from reconciler.gateway.versions import versioned

    version = profile_node(spec, profile)
    if version is None or host.user is None or not versioned(spec):
        return None
    return node_binary(host.user.home, version)


def gateway_call(spec: Spec, host: HostContext, profile: Profile) -> GatewayCall | None:
    """How to run the gateway's CLI for `profile`, or None when it is not installed."""
    names = product_names(spec.product)
    program = _versioned_cli(spec, host, profile) or locate(
        spec.runtime.gateway.command or names.command, host
    )
    if program is None:
        return None
    paths = profile_paths(spec, profile, host)
    env = [
        (names.env("STATE_DIR"), str(paths.state)),
        (names.env("CONFIG_PATH"), str(paths.config)),
        (names.env("GATEWAY_PORT"), str(profile.port)),
    ]
    if profile.name != "default":
        env.insert(0, (names.env("PROFILE"), profile.name))
    node = _pinned_node(spec, host, profile)
    if node is not None:
        # The CLI is npm's `#!/usr/bin/env node` link: it runs on the profile's installed
        # node, as its unit does, only with that node first on PATH.
        env.append(("PATH", f"{node.parent}:/usr/local/bin:/usr/bin:/bin"))
    token = paths.token_env if uses_token_file(spec, profile) else None
    return GatewayCall(program, profile.port, tuple(env), token)


@recorded
@frozen
class GatewayHealth:
    """`<cmd> gateway health --json`: ok, or why not."""

    ok: bool
    detail: str = ""

    def redacted(self, redaction: Redaction) -> GatewayHealth:
        return GatewayHealth(self.ok, redaction.text(self.detail))


@recorded
@frozen
class GatewayHealthProbe(Probe[GatewayHealth]):
    """The gateway's RPC health check on its port (about 3 s on a real gateway)."""

    program: str
    port: int
    env: tuple[tuple[str, str], ...]
    token_file: Path | None = None

    def call(self) -> GatewayCall:
        return GatewayCall(self.program, self.port, self.env, self.token_file)

    def command(self, host: HostContext) -> Command:
        return self.call().command("gateway", "health", "--json", timeout_s=20)

    def parse(self, result: CommandResult) -> GatewayHealth:
        return parse_health(result)


def parse_health(result: CommandResult) -> GatewayHealth:
    """Pure: ok only when the CLI printed a JSON object with `ok: true` (and exited 0)."""
    if result.exit_code is None:
        return GatewayHealth(False, result.error or "did not run")
    doc = _last_json_object(result.stdout)
    if doc is None:
        return GatewayHealth(False, result.summary())
    if doc.get("ok") is True and result.exit_code == 0:
        return GatewayHealth(True)
    error = doc.get("error") or doc.get("message") or result.summary()
    if isinstance(error, dict):
        # openclaw 2026.9: {"ok": false, "error": {"type": "...", "message": "..."}}
        kind, message = error.get("type"), error.get("message")
        error = ": ".join(str(x) for x in (kind, message) if x) or json.dumps(error)
    return GatewayHealth(False, str(error))


def _last_json_object(text: str) -> dict[str, object] | None:
    """The JSON object the CLI printed (it may print log lines before it)."""
    start = text.find("{")
    while start != -1:
        try:
            doc = json.loads(text[start:])
        except json.JSONDecodeError:
            start = text.find("{", start + 1)
            continue
        return doc if isinstance(doc, dict) else None
    return None


# `Error: unknown requestId`, `GatewayRequestError: unknown requestId`, `Error [CODE]: ...`: the
# line a node program's thrown error starts with (the stack's `at ...` lines follow it).
_ERROR_LINE = re.compile(
    r"^\s*(?:Uncaught )?(?:[A-Z][A-Za-z]*)?Error(?: \[[A-Z0-9_]+\])?: (?P<why>.+)$"
)


def failure_reason(result: CommandResult) -> str:
    """Why the gateway's CLI refused, as it said it: the message of the first error line of its
    output (a node stack trace ends with `at ...` lines and `Node.js vNN`, never the reason),
    else the result's own summary."""
    if result.error:
        return result.error
    for line in (result.stderr + "\n" + result.stdout).splitlines():
        found = _ERROR_LINE.match(line)
        if found:
            return f"exit {result.exit_code}: {found.group('why').strip()}"
    return result.summary()

"""The review commands (`plan --format/--out/--against`, `probe`, `diff`) through the real CLI,
against a FakeHost; and the saved-plan check the way `apply PLAN.json` will make it."""

from __future__ import annotations

from pathlib import Path

import engine_on_fakehost as drive
from click.testing import CliRunner, Result
from fakehost import FakeHost

from reconciler import cli as cli_module
from reconciler.app.context import AppContext
from reconciler.app.plan_pass import probe_and_plan
from reconciler.core.host import HostContext
from reconciler.kinds import all_kinds
from reconciler.review.saved_plan import check_fresh, load_saved_plan
from reconciler.spec import load_spec

SPEC = """\
apiVersion: reconciler/v1
host:
  name: vm102
  user: user
runtime:
  node: ">=22.12"
  gateway:
    package: clawdbot
    version: "2026.1.24-3"
linger: true
tailscale:
  operator: user
  serve:
    - https: 443
      profile: personal
profiles:
  ops:
    port: 18809
    auth: token
  personal:
    port: 18789
reconcile:
  timer:
    enabled: true
  # The tests run from a clone: name an installed program, as a host would have one.
  command: [/opt/reconciler/bin/reconciler]
"""

WORK_PROFILE = "  work:\n    port: 18829\n"


def with_work_profile(text: str) -> str:
    """The spec with one more profile (what a PR adding a gateway changes)."""
    return text.replace(
        "  personal:\n    port: 18789\n", "  personal:\n    port: 18789\n" + WORK_PROFILE
    )


class FakeHostCli:
    """Runs `reconciler ...` in-process with this fake host as "this machine"."""

    def __init__(self, fake: FakeHost, invoker: str = "user") -> None:
        self.fake = fake
        self.host: HostContext = drive.host_context(fake, invoker)

    def context(self) -> AppContext:
        """The real world but for the host: this fake one, and runners on it."""
        return AppContext(
            discover_host=lambda spec: self.host,
            make_runner=lambda host, mutating: (
                drive.host_runner(self.fake, host)
                if mutating
                else drive.read_only_runner(self.fake, host)
            ),
        )

    def __call__(self, *args: str | Path) -> Result:
        return CliRunner().invoke(cli_module.cli, [str(a) for a in args], obj=self.context())

    def check_saved_plan(self, plan_file: Path) -> None:
        """What `apply PLAN.json` does before it runs anything (StalePlan when stale)."""
        saved = load_saved_plan(plan_file)
        assert saved.spec_path is not None
        spec = load_spec(saved.spec_path)
        runner = drive.read_only_runner(self.fake, self.host)
        fresh = probe_and_plan(spec, self.host, runner, all_kinds())
        check_fresh(
            saved,
            spec.path,
            spec.sha256,
            self.host.hostname,
            fresh.plan,
            invoker=self.host.invoker.name,
        )

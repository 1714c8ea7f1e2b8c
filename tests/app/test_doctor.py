"""`reconciler doctor` on a converged fake host: healthy, then one broken link at a time, each
named with its exact fix; the chain stops there."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import engine_on_fakehost as drive
import pytest
from click.testing import Result
from fakehost import FakeHost
from review_cli import SPEC, FakeHostCli

from reconciler.spec import load_spec

PERSONAL = "clawdbot-gateway-personal.service"
OPS = "clawdbot-gateway-ops.service"


@pytest.fixture
def host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHostCli]:
    """A fake host converged to the two-profile spec (personal served on 443, ops with a token)."""
    monkeypatch.chdir(tmp_path)
    fake = FakeHost(tmp_path / "host")
    fake.set_node("v22.12.0")
    fake.set_gateway("2026.1.24-3")
    fake.set_tailscale(https=True)
    fake.set_linger("user", True)
    Path("vm102.yaml").write_text(SPEC)
    cli = FakeHostCli(fake)
    converged = drive.apply(fake, load_spec("vm102.yaml"), cli.host)
    assert converged.final.runnable == () and not converged.final.blocked
    fake.clear_calls()
    yield cli
    fake.close()


def doctor(host: FakeHostCli, *args: str) -> Result:
    return host("doctor", "vm102.yaml", *args)


def chain(host: FakeHostCli, profile: str = "personal") -> dict[str, object]:
    result = doctor(host, "--format", "json", "--profile", profile)
    doc = json.loads(result.stdout)
    assert result.exit_code == (0 if doc["healthy"] else 1), result.output
    (only,) = doc["profiles"]
    return only  # type: ignore[no-any-return]


def broken(host: FakeHostCli, profile: str = "personal") -> dict[str, str]:
    """The last checked link, which must be the broken one."""
    found = chain(host, profile)
    links = found["links"]
    assert isinstance(links, list)
    assert [x["ok"] for x in links] == [True] * (len(links) - 1) + [False], links
    return links[-1]  # type: ignore[no-any-return]


def test_healthy_host_exits_0_and_prints_the_url(host: FakeHostCli) -> None:
    result = doctor(host)
    assert result.exit_code == 0, result.output
    assert "profile personal: https://vm102.tail1234.ts.net/\n" in result.stdout
    assert "profile ops: not served over Tailscale (on the host: http://127.0.0.1:18809/)" in (
        result.stdout
    )
    assert "BROKEN" not in result.stdout
    personal = chain(host)
    assert [x["link"] for x in personal["links"]] == [  # type: ignore[union-attr]
        "tailscaled", "https", "serve", "funnel", "manager", "unit", "restarts", "active",
        "port", "rpc", "linger", "config", "state", "secrets",
    ]  # fmt: skip
    # Read-only, and batched: no mutating call, no journal read on a healthy host.
    assert host.fake.mutating_calls() == []
    assert "journalctl" not in {c["tool"] for c in host.fake.calls()}


def test_health_runs_as_the_user_with_the_profiles_environment(host: FakeHostCli) -> None:
    assert doctor(host, "--profile", "ops").exit_code == 0
    (call,) = [c for c in host.fake.calls() if c["argv"][1:3] == ["gateway", "health"]]
    assert call["caller"] == "user"
    assert call["argv"][3:] == ["--json"]  # the port comes from CLAWDBOT_GATEWAY_PORT


def test_tailscaled_down(host: FakeHostCli) -> None:
    host.fake.set_tailscale(daemon=False)
    link = broken(host)
    assert link == {
        "link": "tailscaled",
        "ok": False,
        "detail": "tailscaled is not running",
        "fix": "sudo systemctl enable --now tailscaled",
    }
    # ops is not served: its chain does not go through tailscale, and it stays healthy.
    assert chain(host, "ops")["healthy"] is True
    assert doctor(host).exit_code == 1


def test_tailscale_logged_out(host: FakeHostCli) -> None:
    host.fake.set_tailscale(backend_state="NeedsLogin")
    link = broken(host)
    assert (link["link"], link["fix"]) == ("tailscaled", "sudo tailscale up")
    assert "NeedsLogin" in link["detail"]


def test_https_certificates_off(host: FakeHostCli) -> None:
    host.fake.set_tailscale(https=False)
    link = broken(host)
    assert link["link"] == "https"
    assert link["fix"] == (
        "enable HTTPS in the Tailscale admin console: https://login.tailscale.com/admin/dns"
    )


def test_serve_entry_removed(host: FakeHostCli) -> None:
    host.fake.set_serve_config({})
    link = broken(host)
    assert link["link"] == "serve"
    assert link["detail"] == "no serve entry for https://vm102.tail1234.ts.net:443/"
    assert link["fix"] == (
        "reconciler apply vm102.yaml  (or by hand: sudo tailscale serve --bg --yes "
        "--https=443 http://127.0.0.1:18789)"
    )


def test_serve_entry_pointing_at_another_port(host: FakeHostCli) -> None:
    web = {"vm102.tail1234.ts.net:443": {"Handlers": {"/": {"Proxy": "http://127.0.0.1:18799"}}}}
    host.fake.set_serve_config({"TCP": {"443": {"HTTPS": True}}, "Web": web})
    link = broken(host)
    assert link["link"] == "serve"
    assert link["detail"] == (
        "https://vm102.tail1234.ts.net:443/ proxies to http://127.0.0.1:18799, "
        "not http://127.0.0.1:18789"
    )


def test_funnel_open_without_permission(host: FakeHostCli) -> None:
    config = host.fake.serve_config()
    config["AllowFunnel"] = {"vm102.tail1234.ts.net:443": True}
    host.fake.set_serve_config(config)
    link = broken(host)
    assert link["link"] == "funnel"
    assert "open to the internet" in link["detail"]
    assert link["fix"] == "sudo tailscale serve --bg --yes --https=443 http://127.0.0.1:18789"


def test_user_manager_down(host: FakeHostCli) -> None:
    host.fake.set_session(False)
    host.fake.set_linger("user", False)  # no session, no linger: the manager goes away
    link = broken(host, "ops")
    assert link["link"] == "manager"
    assert link["fix"] == "sudo loginctl enable-linger user"


def test_a_host_whose_pid_1_is_not_systemd_says_so(host: FakeHostCli) -> None:
    # issue 22: a container started with bash as PID 1 got "no linger" and its useless fix.
    import shutil

    host.fake.set_session(False)
    host.fake.set_linger("user", False)
    shutil.rmtree(host.fake.systemd_dir)
    (host.fake.proc_root / "1").mkdir(parents=True, exist_ok=True)
    (host.fake.proc_root / "1" / "comm").write_text("bash\n")
    link = broken(host, "ops")
    assert link["link"] == "manager"
    assert link["detail"].startswith("systemd is not running on this host (PID 1 is bash)")
    assert "enable-linger" not in link["fix"] and "systemd as PID 1" in link["fix"]


def test_unit_not_enabled(host: FakeHostCli) -> None:
    assert host.fake.run("systemctl", "--user", "disable", OPS).returncode == 0
    link = broken(host, "ops")
    assert (link["link"], link["detail"]) == ("unit", f"{OPS} is disabled")
    assert link["fix"] == f"systemctl --user enable {OPS}"


def test_unit_missing(host: FakeHostCli) -> None:
    host.fake.stop_unit(OPS)
    host.fake.remove_unit_file(OPS)
    host.fake.daemon_reload()
    link = broken(host, "ops")
    assert (link["link"], link["detail"]) == ("unit", f"{OPS} is not-found")
    assert link["fix"] == "reconciler apply vm102.yaml"


def test_restart_loop_shows_the_journal(host: FakeHostCli) -> None:
    host.fake.add_journal(OPS, "Config invalid", 'gateway: Unrecognized key: "managedBy"')
    host.fake.crash_loop(OPS, exit_status=1, restarts=7)
    link = broken(host, "ops")
    assert link["link"] == "restarts"
    assert link["detail"] == (
        f"{OPS} keeps failing (activating/auto-restart, restarted 7 times, last exit status 1)"
    )
    assert link["log"] == ["Config invalid", 'gateway: Unrecognized key: "managedBy"']
    assert link["fix"] == (
        f"read the log: journalctl --user -u {OPS} -n 50; fix what it says, then "
        f"systemctl --user restart {OPS}"
    )
    human = doctor(host, "--profile", "ops").stdout
    assert '| gateway: Unrecognized key: "managedBy"' in human
    assert "(not checked until fixed: active, port, rpc, linger, config, state, secrets)" in human


def test_unit_stopped(host: FakeHostCli) -> None:
    host.fake.stop_unit(OPS)
    link = broken(host, "ops")
    assert (link["link"], link["detail"]) == ("active", f"{OPS} is inactive (dead)")
    assert link["fix"] == f"systemctl --user start {OPS}"


def test_port_not_answering(host: FakeHostCli) -> None:
    host.fake.close_listener(18809)
    link = broken(host, "ops")
    assert (link["link"], link["detail"]) == ("port", "nothing listens on port 18809")
    assert link["fix"] == f"read the log: journalctl --user -u {OPS} -n 50"


def test_gateway_rpc_health_fails(host: FakeHostCli) -> None:
    # The token on disk changed; the running gateway still has the old one and refuses it.
    token_file = host.fake.home / ".clawdbot-ops/gateway.env"
    token_file.write_text("CLAWDBOT_GATEWAY_TOKEN=" + "7d1e" * 16 + "\n")
    link = broken(host, "ops")
    assert link["link"] == "rpc"
    assert link["detail"].startswith(
        "gateway health failed: exit 1: unauthorized: gateway token mismatch"
    )
    assert link["fix"] == "reconciler apply vm102.yaml"
    assert "7d1e" * 16 not in doctor(host, "--format", "json").stdout


def test_gateway_rpc_health_sends_the_token(host: FakeHostCli) -> None:
    # The runner reads the token from the profile's env file: never in argv.
    assert chain(host, "ops")["healthy"] is True
    token = (host.fake.home / ".clawdbot-ops/gateway.env").read_text().split("=", 1)[1].strip()
    assert all(token not in " ".join(c["argv"]) for c in host.fake.calls())


def test_linger_off_while_a_session_keeps_the_manager_up(host: FakeHostCli) -> None:
    host.fake.set_session(True)
    host.fake.set_linger("user", False)
    link = broken(host, "ops")
    assert link["link"] == "linger"
    assert link["fix"] == "sudo loginctl enable-linger user"


def test_owned_config_key_changed(host: FakeHostCli) -> None:
    config = host.fake.home / ".clawdbot-ops/clawdbot.json"
    doc = json.loads(config.read_text())
    doc["gateway"]["bind"] = "lan"
    config.write_text(json.dumps(doc))
    link = broken(host, "ops")
    assert link["link"] == "config"
    assert link["fix"] == "reconciler apply vm102.yaml"


def test_state_dir_mode(host: FakeHostCli) -> None:
    os.chmod(host.fake.home / ".clawdbot-ops", 0o755)
    link = broken(host, "ops")
    assert link["link"] == "state"
    assert "0755 -> 0700" in link["detail"] or "0o755 -> 0o700" in link["detail"], link
    assert link["fix"] == "reconciler apply vm102.yaml"


def test_unknown_profile_is_an_error(host: FakeHostCli) -> None:
    result = doctor(host, "--profile", "nope")
    assert result.exit_code == 64
    assert result.stderr == (
        "error: --profile nope: vm102.yaml has no profile 'nope' (profiles: ops, personal)\n"
    )


def test_the_chain_is_one_registry_and_docs_list_it_in_order() -> None:
    """Each link's name is registered with its check (no second list to keep in step), and
    docs/doctor.md's table names the links in the order the chain checks them."""
    import re

    from reconciler.app.doctor import _CHAIN, LINKS

    assert len(set(LINKS)) == len(LINKS) == len(_CHAIN)
    doc = (Path(__file__).parents[2] / "docs" / "doctor.md").read_text(encoding="utf-8")
    assert re.findall(r"^\| `(\w+)` \|", doc, re.M) == list(LINKS)


def test_a_token_file_others_may_read_is_broken_with_the_chmod_fix(host: FakeHostCli) -> None:
    # issue 22: apply plans 0600 for gateway.env, but doctor said nothing about it.
    env = host.fake.home / ".clawdbot-ops" / "gateway.env"
    env.chmod(0o644)
    link = broken(host, "ops")
    assert link["link"] == "secrets"
    assert link["detail"] == (
        f"{env} has mode 0644: other users on this host may read the gateway token"
    )
    assert link["fix"].endswith(f"chmod 600 {env}")
    env.chmod(0o600)
    assert chain(host, "ops")["healthy"] is True


def test_credentials_others_may_read_are_named_file_by_file_with_the_chmod_fix(
    host: FakeHostCli,
) -> None:
    # issue 22: doctor flags credentials readable by others, as it does the token file.
    credentials = host.fake.home / ".clawdbot-personal" / "credentials"
    assert credentials.is_dir()  # apply made it 0700
    login = credentials / "whatsapp" / "default"
    login.parent.mkdir(mode=0o700)
    login.mkdir(mode=0o700)
    creds = login / "creds.json"
    creds.write_text('{"noiseKey": "x"}')
    creds.chmod(0o644)
    keys = login / "app-state-sync-key-1.json"
    keys.write_text("{}")
    keys.chmod(0o600)  # private: not named
    (credentials / "telegram").mkdir(mode=0o700)
    (credentials / "telegram" / "token").write_text("123")
    (credentials / "telegram" / "token").chmod(0o640)
    (credentials / "link").symlink_to(creds)  # a link's own mode is 0777: never named
    link = broken(host, "personal")
    assert link["link"] == "secrets"
    telegram = credentials / "telegram" / "token"
    assert link["detail"] == (
        "other users on this host may read these channel logins: "
        f"{telegram} (a regular file, mode 0640), {creds} (a regular file, mode 0644)"
    )
    assert link["fix"].endswith(f"chmod go-rwx {telegram} {creds}")
    assert "noiseKey" not in doctor(host).output  # modes only, never content
    (login).chmod(0o755)  # a folder others may enter is named too
    assert f"{login} (a directory, mode 0755)" in broken(host, "personal")["detail"]
    for path in (login, creds, telegram):
        path.chmod(path.stat().st_mode & 0o700)
    found = chain(host, "personal")
    assert found["healthy"] is True
    assert found["links"][-1]["detail"] == "credentials are private (no group or other access)"


def test_many_exposed_credentials_get_one_recursive_chmod(host: FakeHostCli) -> None:
    credentials = host.fake.home / ".clawdbot-ops" / "credentials"
    for n in range(12):
        (credentials / f"key-{n:02}").write_text("k")
        (credentials / f"key-{n:02}").chmod(0o604)
    link = broken(host, "ops")
    assert link["detail"].endswith(
        f"{credentials / 'key-09'} (a regular file, mode 0604) and 2 more"
    )
    assert link["fix"].endswith(f"chmod -R go-rwx {credentials}")

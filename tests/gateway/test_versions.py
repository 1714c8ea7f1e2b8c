"""gateway/versions.py: paths known before install, package.json, wanted versions, retention."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from reconciler.facts.gateway_versions import InstalledVersion, retained
from reconciler.gateway.versions import (
    entry_point,
    install_dir,
    install_temp_name,
    package_json,
    prefix_path,
    profile_version,
    temp_version,
    user_owned,
    version_in_exec,
    versioned,
    wanted_versions,
)
from reconciler.spec.loader import load_spec_text

HOME = Path("/home/user")
BASE = """\
apiVersion: reconciler/v1
host: {name: vm102, user: user, data_roots: [/opt/clawdbot]}
"""


def spec(
    runtime: str = "    install: versioned\n",
    profiles: str = "  personal: {port: 18789}\n",
    product: str = "",
):  # type: ignore[no-untyped-def]
    runtime = (
        runtime
        if runtime.startswith("    install") or not runtime
        else "    install: versioned\n" + runtime
    )
    gateway = "runtime:\n  gateway:\n" + runtime if runtime else ""
    text = BASE + product + gateway + "profiles:\n" + profiles
    return load_spec_text(text, "t.yaml")


def test_default_prefix_is_the_users_and_the_entry_is_known_before_install() -> None:
    s = spec('    version: "2026.1.24-3"\n')
    prefix = prefix_path(s, HOME)
    assert prefix == HOME / ".local/lib/clawdbot"
    assert user_owned(s)
    assert install_dir(prefix, "2026.1.24-3") == HOME / ".local/lib/clawdbot/2026.1.24-3"
    # the real package's "bin": {"clawdbot": "dist/entry.js"} (clawdbot 2026.1.24-3)
    assert entry_point(s, prefix, "2026.1.24-3") == Path(
        "/home/user/.local/lib/clawdbot/2026.1.24-3/node_modules/clawdbot/dist/entry.js"
    )


def test_openclaw_entry_and_a_fork_package_use_npms_link() -> None:
    s = spec('    version: "2026.1.30"\n', product="product: openclaw\n")
    prefix = prefix_path(s, HOME)
    assert (
        entry_point(s, prefix, "2026.1.30")
        == prefix / "2026.1.30/node_modules/openclaw/openclaw.mjs"
    )
    fork = spec('    package: "@me/clawdbot-fork"\n    version: "1.0.0"\n')
    assert entry_point(fork, prefix, "1.0.0") == prefix / "1.0.0/node_modules/.bin/clawdbot"


def test_the_entry_follows_the_installed_package_not_the_product() -> None:
    """A product's own package runs its own bin target whatever `product` says (validation
    refuses such a pair; the path must still name what npm put there, not `.bin/clawdbot`)."""
    s = spec('    version: "2026.1.30"\n')
    crossed = replace(
        s, runtime=replace(s.runtime, gateway=replace(s.runtime.gateway, package="openclaw"))
    )
    prefix = prefix_path(crossed, HOME)
    assert (
        entry_point(crossed, prefix, "2026.1.30")
        == prefix / "2026.1.30/node_modules/openclaw/openclaw.mjs"
    )


def test_a_root_prefix_is_not_the_users() -> None:
    s = spec('    version: "2026.1.24-3"\n    prefix: /opt/clawdbot\n')
    assert prefix_path(s, HOME) == Path("/opt/clawdbot")
    assert not user_owned(s)


def test_install_dir_refuses_what_is_not_a_version() -> None:
    for bad in ("..", ".", "a/b", "latest", "1.2"):
        with pytest.raises(ValueError):
            install_dir(HOME, bad)


def test_package_json_is_deterministic_with_extra_and_overrides() -> None:
    s = spec(
        '    version: "2026.1.24-3"\n'
        '    extra: {strip-ansi: "^7.1.0", clawdbot: "9.9.9"}\n'
        '    overrides: {libsignal: "npm:libsignal@6.0.0"}\n'
    )
    text = package_json(s, "2026.1.24-3")
    assert text == package_json(s, "2026.1.24-3")
    doc = json.loads(text)
    # the gateway's own pin wins over an extra of the same name
    assert doc["dependencies"] == {"clawdbot": "2026.1.24-3", "strip-ansi": "^7.1.0"}
    assert doc["overrides"] == {"libsignal": "npm:libsignal@6.0.0"}
    assert doc["private"] is True
    assert "overrides" not in json.loads(package_json(spec('    version: "1.0.0"\n'), "1.0.0"))


def test_profile_versions_and_when_installs_are_versioned() -> None:
    profiles = '  personal: {port: 18789}\n  ops: {port: 18809, gateway_version: "2026.1.30"}\n'
    s = spec('    version: "2026.1.24-3"\n', profiles)
    assert profile_version(s, s.profile("ops")) == "2026.1.30"
    assert profile_version(s, s.profile("personal")) == "2026.1.24-3"
    assert wanted_versions(s) == ("2026.1.30", "2026.1.24-3")
    assert versioned(s)
    assert not versioned(spec(""))  # no pin: the gateway on PATH is checked only
    global_pin = load_spec_text(
        BASE + 'runtime: {gateway: {version: "1.0.0"}}\nprofiles: {a: {port: 1}}\n', "g.yaml"
    )
    assert not versioned(global_pin)  # install: global (the default): npm install -g
    only_canary = spec(
        "    install: versioned\n", '  ops: {port: 18809, gateway_version: "2026.1.30"}\n'
    )
    assert versioned(only_canary) and wanted_versions(only_canary) == ("2026.1.30",)


def test_temp_names_round_trip() -> None:
    name = install_temp_name("2026.1.24-3", "0123abcd")
    assert name == ".install-2026.1.24-3-0123abcd"
    assert temp_version(name) == "2026.1.24-3"
    assert temp_version("2026.1.24-3") is None
    assert temp_version(".install-x") is None


def test_version_in_exec_reads_the_prefix_path() -> None:
    prefix = HOME / ".local/lib/clawdbot"
    line = f'"/usr/bin/node" "{prefix}/2026.1.24-3/node_modules/clawdbot/dist/entry.js" gateway --port 18789'
    assert version_in_exec(line, prefix) == "2026.1.24-3"
    assert version_in_exec('"/usr/bin/clawdbot" gateway --port 18789', prefix) is None


def _i(version: str, at: float, complete: bool = True) -> InstalledVersion:
    return InstalledVersion(version, complete, version if complete else None, at)


@pytest.mark.parametrize(
    ("keep", "kept", "pruned"),
    [
        (0, {"3.0.0"}, ("0.9.0", "2.0.0", "1.0.0", "2.5.0")),  # oldest install first
        (1, {"3.0.0", "2.5.0"}, ("0.9.0", "2.0.0", "1.0.0")),
        (2, {"3.0.0", "2.5.0", "1.0.0"}, ("0.9.0", "2.0.0")),
        (9, {"3.0.0", "2.5.0", "1.0.0", "2.0.0"}, ("0.9.0",)),
    ],
)
def test_retention_keeps_needed_plus_the_newest_by_install_time(
    keep: int, kept: set[str], pruned: tuple[str, ...]
) -> None:
    installed = [
        _i("1.0.0", 20.0),
        _i("2.0.0", 10.0),  # older install of a higher version
        _i("2.5.0", 30.0),
        _i("3.0.0", 40.0),
        _i("0.9.0", 50.0, complete=False),  # incomplete: never kept as a previous version
    ]
    got_kept, got_pruned = retained(installed, ["3.0.0"], keep)
    assert got_kept == kept
    assert got_pruned == pruned

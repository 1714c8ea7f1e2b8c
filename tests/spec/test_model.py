"""Conversion to the model: a valid spec gives exactly the expected `Spec`, defaults included, and
the schema's `default` keywords agree with the dataclass defaults of model.py."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler.spec import load_spec
from reconciler.spec.loader import load_spec_text
from reconciler.spec.model import (
    Backup,
    Docker,
    GatewayRuntime,
    GitSource,
    Host,
    Metrics,
    Node,
    Profile,
    Reconcile,
    Retention,
    Runtime,
    ServeEntry,
    Spec,
    SshAccess,
    Tailscale,
    Timer,
)
from reconciler.spec.schema import schema

ROOT = Path(__file__).resolve().parents[2]
VALID = ROOT / "tests" / "data" / "specs" / "valid"

MINIMAL = """\
apiVersion: reconciler/v1
host: {name: vm102, user: user}
profiles:
  personal: {port: 18789}
"""


def test_example_full_gives_exactly_this_spec() -> None:
    path = ROOT / "specs" / "example-full.yaml"
    spec = load_spec(path)
    expected = Spec(
        host=Host(
            name="vm102",
            user="user",
            ssh=SshAccess(address="vm102", user="admin", port=22, python="python3"),
            data_roots=("/srv/clawd",),
        ),
        product="clawdbot",
        runtime=Runtime(
            node=Node(range=">=22.12.0 <25"),
            gateway=GatewayRuntime(
                package="clawdbot",
                version="2026.1.24-3",
                start_timeout_s=180.0,
                install="versioned",
                health_window_s=10.0,
                prefix="/srv/clawd/gateway",
                overrides=(("libsignal", "npm:libsignal@6.0.0"),),
                extra=(("strip-ansi", "^7.1.0"),),
                keep=1,
            ),
            docker=Docker("optional"),
        ),
        linger=True,
        tailscale=Tailscale(
            operator="user",
            funnel="allow",
            serve=(
                ServeEntry(https=443, profile="personal"),
                ServeEntry(https=8443, target="http://127.0.0.1:3000"),
                ServeEntry(https=10000, profile="ops", funnel=True),
            ),
            prune=True,
        ),
        profiles=(
            Profile(
                name="ops",
                port=18809,
                state_dir="~/.clawdbot-ops",
                workspace="~/clawd-ops",
                bind="loopback",
                auth="token",
                prune=True,
                gateway_version="2026.1.24-3",
            ),
            Profile(name="personal", port=18789),
        ),
        prune_units=True,
        reconcile=Reconcile(
            timer=Timer(enabled=True, interval_s=900, on_boot_s=120, randomized_delay_s=60),
            source=GitSource(path="/home/user/host-spec", ref="main"),
            command=("/opt/reconciler/bin/reconciler",),
        ),
        metrics=Metrics(textfile_dir="/var/lib/prometheus/node-exporter"),
        backup=Backup(
            repository="sftp:backup@nas.example:/srv/restic/vm102",
            password_file="~/.config/restic/password",
            schedule="daily",
            schedule_interval_s=None,
            environment_file="~/.config/restic/env",
            retention=Retention(keep_last=3, keep_daily=7, keep_weekly=4, keep_monthly=6),
            profiles=("ops",),
            exclude=("*.log", "logs", ".cache", "cache"),
            consistency="stop",
        ),
        api_version="reconciler/v1",
        path=path,
        sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
    )
    assert spec == expected


def test_vm102_seed_spec() -> None:
    spec = load_spec(ROOT / "specs" / "vm102.yaml")
    assert spec.host == Host(name="vm102", user="user")
    assert spec.product == "clawdbot"
    assert spec.runtime == Runtime(
        node=Node(range=">=22.12"),
        gateway=GatewayRuntime(package="clawdbot", version="2026.1.24-3"),
    )
    assert spec.linger is True
    assert spec.tailscale == Tailscale(
        operator="user", funnel="deny", serve=(ServeEntry(https=443, profile="personal"),)
    )
    assert spec.profiles == (Profile(name="ops", port=18809), Profile(name="personal", port=18789))
    assert spec.reconcile.timer == Timer(enabled=True, interval_s=900)
    assert spec.reconcile.source is None
    assert (
        (ROOT / "specs" / "vm102.yaml")
        .read_text()
        .startswith("# yaml-language-server: $schema=../schemas/spec.schema.json\n")
    )


def test_minimal_spec_takes_every_default() -> None:
    spec = load_spec_text(MINIMAL, "minimal.yaml")
    assert spec == Spec(
        host=Host(name="vm102", user="user"),
        runtime=Runtime(node=Node(), gateway=GatewayRuntime(package="clawdbot")),
        profiles=(Profile(name="personal", port=18789),),
        path=None,
        sha256=hashlib.sha256(MINIMAL.encode()).hexdigest(),
    )
    assert spec.tailscale is None  # absent: Tailscale is not managed
    assert spec.linger is True


def test_openclaw_package_defaults_to_the_product() -> None:
    spec = load_spec(VALID / "openclaw.yaml")
    assert spec.product == "openclaw"
    assert spec.runtime.gateway == GatewayRuntime(package="openclaw", version="2026.9.1")
    assert spec.runtime.docker == Docker("absent")
    assert spec.linger is None
    assert spec.tailscale == Tailscale()
    assert [p.name for p in spec.profiles] == ["default", "work-2"]
    assert spec.profile("work-2") == Profile(
        name="work-2", port=18809, bind="tailnet", auth="token"
    )


def test_durations_become_seconds() -> None:
    spec = load_spec(VALID / "durations.yaml")
    assert spec.runtime.gateway.start_timeout_s == 90.0
    assert spec.reconcile.timer == Timer(interval_s=5400, on_boot_s=45, randomized_delay_s=0)


def test_warm_up_is_on_unless_the_spec_turns_it_off() -> None:
    assert load_spec_text(MINIMAL, "m.yaml").runtime.gateway.warm_up is True
    off = MINIMAL + "runtime:\n  gateway: {warm_up: false}\n"
    assert load_spec_text(off, "m.yaml").runtime.gateway.warm_up is False
    from reconciler.spec.errors import SpecInvalid

    with pytest.raises(SpecInvalid) as refused:
        load_spec_text(MINIMAL + "runtime:\n  gateway: {warm_up: sometimes}\n", "m.yaml")
    (error,) = refused.value.errors
    assert (error.file, error.line, error.field) == ("m.yaml", 6, "runtime.gateway.warm_up")


def test_quoted_words_stay_text() -> None:
    spec = load_spec(VALID / "quoted-words.yaml")
    assert spec.host.name == "y"
    assert spec.linger is False
    assert [p.name for p in spec.profiles] == ["no", "on"]
    assert spec.reconcile.source == GitSource(path="~/host-spec", ref="off")


def test_aliases_expand() -> None:
    spec = load_spec(VALID / "anchors.yaml")
    assert spec.tailscale is not None and spec.tailscale.operator == "user"
    assert spec.reconcile.timer.interval_s == spec.reconcile.timer.on_boot_s == 1800


def test_bytes_and_text_give_the_same_spec() -> None:
    assert load_spec_text(MINIMAL, "a.yaml") == load_spec_text(MINIMAL.encode(), "b.yaml")


def test_bom_and_crlf_are_accepted() -> None:
    spec = load_spec(VALID / "bom-crlf.yaml")
    assert spec.sha256 == hashlib.sha256((VALID / "bom-crlf.yaml").read_bytes()).hexdigest()
    assert spec.profiles == (Profile(name="personal", port=18789),)


# --- schema defaults == model defaults ------------------------------------------------------


def _resolve(node: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if ref:
        target = root
        for part in ref.removeprefix("#/").split("/"):
            target = target[part]
        return {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def _fill_defaults(instance: Any, node: dict[str, Any], root: dict[str, Any]) -> int:
    """Write every schema default into `instance` where it is absent; how many were written."""
    node = _resolve(node, root)
    written = 0
    if isinstance(instance, dict):
        for key, sub in node.get("properties", {}).items():
            sub_resolved = _resolve(sub, root)
            if key not in instance and "default" in sub_resolved:
                instance[key] = copy.deepcopy(sub_resolved["default"])
                written += 1
            if key in instance:
                written += _fill_defaults(instance[key], sub, root)
        extra = node.get("additionalProperties")
        if isinstance(extra, dict):
            for key in instance:
                if key not in node.get("properties", {}):
                    written += _fill_defaults(instance[key], extra, root)
    elif isinstance(instance, list) and "items" in node:
        for item in instance:
            written += _fill_defaults(item, node["items"], root)
    return written


SPARSE = """\
apiVersion: reconciler/v1
host: {name: vm102, user: user}
runtime: {gateway: {}}
tailscale:
  serve: [{https: 443, profile: personal}]
profiles:
  personal: {port: 18789}
reconcile:
  timer: {}
  source: {git: ~/host-spec}
"""


def test_schema_defaults_match_model_defaults() -> None:
    """Every `default` in the schema, written out explicitly, gives the same Spec as leaving it out."""
    root = schema()
    data = yaml.safe_load(SPARSE)
    filled = copy.deepcopy(data)
    written = _fill_defaults(filled, root, root)
    # host data_roots, product, runtime.node/docker, gateway version/command/start_timeout/
    # install/health_window/prefix/overrides/extra/keep, linger, tailscale operator/funnel/prune,
    # serve funnel, profile
    # state_dir/workspace/bind/auth/prune/gateway_version/node, prune_units, timer x4, source
    # ref, reconcile command (+ the serve list itself is given)
    assert written == 33
    implicit = load_spec_text(yaml.safe_dump(data), "implicit.yaml")
    explicit = load_spec_text(yaml.safe_dump(filled), "explicit.yaml")
    assert dataclasses.replace(explicit, sha256=None) == dataclasses.replace(implicit, sha256=None)


BACKUP_SPARSE = """\
apiVersion: reconciler/v1
host: {name: vm102, user: user}
profiles: {ops: {port: 18789}}
backup:
  repository: /srv/restic
  password_file: ~/.restic-password
  retention: {keep_daily: 7}
"""


def test_backup_schema_defaults_match_model_defaults() -> None:
    root = schema()
    data = yaml.safe_load(BACKUP_SPARSE)
    filled = copy.deepcopy(data)
    written = _fill_defaults(filled, root, root)
    assert {"schedule", "exclude", "consistency", "keep_last"} <= set(filled["backup"]) | set(
        filled["backup"]["retention"]
    )
    assert written >= 6
    implicit = load_spec_text(yaml.safe_dump(data), "implicit.yaml")
    explicit = load_spec_text(yaml.safe_dump(filled), "explicit.yaml")
    assert dataclasses.replace(explicit, sha256=None) == dataclasses.replace(implicit, sha256=None)
    assert implicit.backup == Backup(
        repository="/srv/restic",
        password_file="~/.restic-password",
        retention=Retention(keep_daily=7),
    )


MODEL_FIELDS_WITH_DEFAULTS: dict[type, dict[str, str | None]] = {
    # model class -> {model field: schema location}, every dataclass field that has a default
    Host: {"data_roots": "host.data_roots", "ssh": None},  # ssh absent: local administration
    GatewayRuntime: {
        "version": "runtime.gateway.version",
        "command": "runtime.gateway.command",
        "start_timeout_s": "runtime.gateway.start_timeout",
        "install": "runtime.gateway.install",
        "health_window_s": "runtime.gateway.health_window",
        "prefix": "runtime.gateway.prefix",
        "overrides": "runtime.gateway.overrides",
        "extra": "runtime.gateway.extra",
        "keep": "runtime.gateway.keep",
        "warm_up": "runtime.gateway.warm_up",
    },
    Runtime: {"docker": "runtime.docker"},
    ServeEntry: {
        "profile": None,  # exactly one of profile/target: no default
        "target": None,
        "funnel": "serveEntry.funnel",
    },
    Tailscale: {
        "operator": "tailscale.operator",
        "funnel": "tailscale.funnel",
        "serve": "tailscale.serve",
        "prune": "tailscale.prune",
    },
    Profile: {
        "state_dir": "profile.state_dir",
        "workspace": "profile.workspace",
        "bind": "profile.bind",
        "auth": "profile.auth",
        "prune": "profile.prune",
        "gateway_version": "profile.gateway_version",
        "node": "profile.node",
    },
    Timer: {
        "enabled": "reconcile.timer.enabled",
        "interval_s": "reconcile.timer.interval",
        "on_boot_s": "reconcile.timer.on_boot",
        "randomized_delay_s": "reconcile.timer.randomized_delay",
    },
    GitSource: {"ref": "reconcile.source.ref"},
    Reconcile: {"timer": "reconcile.timer", "source": None, "command": "reconcile.command"},
    Retention: {
        "keep_last": "backup.retention.keep_last",
        "keep_daily": "backup.retention.keep_daily",
        "keep_weekly": "backup.retention.keep_weekly",
        "keep_monthly": "backup.retention.keep_monthly",
    },
    Backup: {
        "schedule": "backup.schedule",
        "schedule_interval_s": None,  # derived from schedule
        "environment_file": None,  # absent: no backend credentials
        "retention": None,  # absent: never forget
        "profiles": None,  # absent: every profile
        "exclude": "backup.exclude",
        "consistency": "backup.consistency",
    },
    Spec: {
        "backup": None,  # absent: not managed
        "product": "product",
        "linger": "linger",
        "tailscale": None,  # absent: not managed
        "prune_units": "prune_units",
        "reconcile": "reconcile",
        "metrics": None,  # absent: no metrics file
        "api_version": None,  # required in the spec
        "path": None,  # not spec fields
        "sha256": None,
    },
}


@pytest.mark.parametrize("cls", list(MODEL_FIELDS_WITH_DEFAULTS), ids=lambda c: c.__name__)
def test_every_model_default_has_a_schema_default(cls: type) -> None:
    root = schema()
    table = MODEL_FIELDS_WITH_DEFAULTS[cls]
    with_defaults = {
        f.name
        for f in dataclasses.fields(cls)
        if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
    }
    assert with_defaults == set(table), "update MODEL_FIELDS_WITH_DEFAULTS"
    for location in filter(None, table.values()):
        first, *rest = location.split(".")
        node = root["$defs"][first] if first in root["$defs"] else root["properties"][first]
        for part in rest:
            node = _resolve(node, root)["properties"][part]
        assert "default" in node, f"{location} has no default in the schema"


def test_reconcile_command_is_the_argv_prefix_as_written() -> None:
    text = MINIMAL + "reconcile:\n  command: [/srv/dev/.venv/bin/python, -m, reconciler]\n"
    spec = load_spec_text(text, "command.yaml")
    assert spec.reconcile.command == ("/srv/dev/.venv/bin/python", "-m", "reconciler")
    assert load_spec_text(MINIMAL, "minimal.yaml").reconcile.command is None

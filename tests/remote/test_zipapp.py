"""The agent is built from what is installed, and runs on a Python that has nothing else.

"Nothing else": the agent runs under `python -I -S` (no site-packages, no user site): it must
carry every module it imports, and a compiled dependency it leaves out (pyjson5) must have the
pure fallback the code really takes.
"""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import threading
import time
import tomllib
import zipfile
from pathlib import Path

import pytest

from reconciler.remote import zipapp
from reconciler.remote.protocol import HEARTBEAT, PROTOCOL, RESULT_MARK
from reconciler.remote.zipapp import build_agent, runtime_requirements, shipped_distributions

REPO = Path(__file__).resolve().parents[2]


def _names() -> list[str]:
    return zipfile.ZipFile(io.BytesIO(build_agent().data)).namelist()


def test_requirements_without_extras_are_followed_with_their_markers() -> None:
    lines = ["click<9", 'colorama; platform_system == "Windows"', 'pytest; extra == "test"']
    assert list(runtime_requirements(lines)) == [("click", False), ("colorama", True)]
    assert list(runtime_requirements(None)) == []


def test_what_ships_is_pyprojects_runtime_dependencies_minus_the_admin_only_ones() -> None:
    with open(REPO / "pyproject.toml", "rb") as fh:
        declared = tomllib.load(fh)["project"]["dependencies"]
    names = {n.lower() for n, _ in runtime_requirements(declared)}
    shipped = {d.metadata["Name"].lower().replace("_", "-") for d in shipped_distributions()}
    assert {n.lower() for n in zipapp.NOT_SHIPPED} <= names  # every exclusion is still a need
    assert shipped >= names - {n.lower() for n in zipapp.NOT_SHIPPED}
    assert "sh" not in shipped and "deepdiff" not in shipped  # dev and test extras stay here


def test_compiled_only_packages_are_left_out_and_pure_ones_go() -> None:
    names = _names()
    assert build_agent().compiled_only == ("pyjson5",)
    assert not [n for n in names if n.startswith("pyjson5/")]
    assert "json5/__init__.py" in names and "yaml/__init__.py" in names
    assert "nodesemver/__init__.py" in names and "click/__init__.py" in names
    assert not [n for n in names if n.startswith(("jsonschema/", "rpds/", "referencing/"))]
    assert not [n for n in names if n.endswith((".so", ".pyc")) or "__pycache__" in n]


def _isolated(agent: Path, code: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    # -I -S: no site-packages, no user site, no PYTHONPATH: only the standard library and the zip.
    return subprocess.run(
        [
            sys.executable,
            "-I",
            "-S",
            "-c",
            f"import sys; sys.path.insert(0, {str(agent)!r})\n{code}",
        ],
        input=stdin,
        capture_output=True,
        timeout=120,
        check=False,
    )


def test_the_agent_reads_a_json5_config_with_the_pure_parser(tmp_path: Path) -> None:
    agent = tmp_path / "agent.pyz"
    agent.write_bytes(build_agent().data)
    code = (
        "from reconciler.kinds.gateway_config import parse_config\n"
        "print(parse_config('{\\n  // the admin\\'s note\\n  gateway: {port: 18789,},\\n}', 'c'))\n"
        "import importlib.util; print(importlib.util.find_spec('pyjson5'))\n"
    )
    done = _isolated(agent, code)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().splitlines() == ["{'gateway': {'port': 18789}}", "None"]


def test_the_agent_runs_a_probe_with_nothing_but_itself(tmp_path: Path) -> None:
    agent = tmp_path / "agent.pyz"
    agent.write_bytes(build_agent().data)
    spec = (REPO / "specs" / "vm102.yaml").read_bytes()
    request = {
        "protocol": PROTOCOL,
        "argv": ["probe", "@file:spec.yaml", "--out", "@file:s.json", "--host-check=off"],
        "files": {"spec.yaml": base64.b64encode(spec).decode()},
        "want": ["s.json"],
        "schema_checked": [__import__("hashlib").sha256(spec).hexdigest()],
    }
    done = _isolated(
        agent,
        "from reconciler.agent import main; sys.exit(main())",
        json.dumps(request).encode(),
    )
    assert done.returncode == 0, done.stderr.decode()
    record = json.loads(done.stdout.split(RESULT_MARK)[1])
    assert record["exit"] == 0, done.stderr.decode()
    assert json.loads(base64.b64decode(record["files"]["s.json"]))["kind"]


LOST = """
import sys, time
from reconciler import agent
agent.HEARTBEAT_S = 0.1
agent._start_heartbeat(stop_when_lost=sys.argv[1] == "stop")
try:
    time.sleep(5)
except KeyboardInterrupt:
    sys.exit(130)
sys.exit(0)
"""


@pytest.mark.parametrize(("mode", "code"), [("stop", 130), ("finish", 0)])
@pytest.mark.parametrize("gone", ["stderr", "stdout"])
def test_when_the_client_is_gone_the_agent_stops_unless_it_must_finish(
    mode: str, code: int, gone: str
) -> None:
    """The heartbeat's write fails once nobody reads stderr: a read-only command (logs -f) is
    interrupted there; an apply (`finish_if_lost`) runs on to the end of its reviewed steps.
    Behind a persisted SSH master only stdout's reader goes (stderr is still read): that too
    stops a read-only command, at once, although it writes nothing there."""
    child = subprocess.Popen(
        [sys.executable, "-c", LOST, mode], stderr=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert child.stderr is not None and child.stdout is not None
    assert child.stderr.read(len(HEARTBEAT)) == HEARTBEAT  # alive, and saying so
    start = time.monotonic()
    if gone == "stderr":
        child.stderr.close()  # the client goes away
    else:
        child.stdout.close()  # a persisted master: the session's stdout side only
        threading.Thread(target=child.stderr.read, daemon=True).start()  # heartbeats still read
    assert child.wait(timeout=10) == code
    if mode == "stop":  # (with stderr still read, no heartbeat's write ever fails)
        assert time.monotonic() - start < 2


@pytest.fixture
def build_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "reconciler" / "agent-build"


def test_the_built_agent_is_kept_and_reused_while_the_install_is_unchanged(
    build_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = zipapp._kept_or_zipped()
    (kept,) = build_cache.glob("*.pyz")
    assert kept.name.endswith(f"-{first.sha256}.pyz") and kept.read_bytes() == first.data
    assert build_cache.stat().st_mode & 0o777 == 0o700
    assert first.data == zipapp.zip_agent().data  # the same bytes as a fresh zip

    def no_zip(contents: object) -> zipapp.Agent:
        raise AssertionError("zipped again although nothing changed")

    monkeypatch.setattr(zipapp, "_zip", no_zip)
    again = zipapp._kept_or_zipped()
    assert again.data == first.data and again.distributions == first.distributions


def test_a_damaged_kept_agent_is_never_shipped(build_cache: Path) -> None:
    first = zipapp._kept_or_zipped()
    (kept,) = build_cache.glob("*.pyz")
    kept.write_bytes(first.data[:-10] + b"0123456789")
    again = zipapp._kept_or_zipped()
    assert again.data == first.data
    assert [p.read_bytes() for p in build_cache.glob("*.pyz")] == [first.data]


def test_a_changed_file_makes_another_build(
    build_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    extra = tmp_path / "extra.py"
    extra.write_text("A = 1\n")
    own = zipapp._own_files()
    arcname = "/".join((zipapp.ROOT, extra.name))  # a module this checkout does not have
    monkeypatch.setattr(zipapp, "_own_files", lambda: [*own, (arcname, extra)])
    first = zipapp._kept_or_zipped()
    extra.write_text("A = 22\n")  # another size, another time
    second = zipapp._kept_or_zipped()
    assert second.data != first.data
    with zipfile.ZipFile(io.BytesIO(second.data)) as archive:
        assert archive.read(arcname) == b"A = 22\n"
    assert len(list(build_cache.glob("*.pyz"))) == 2


def test_a_build_folder_others_can_write_is_not_used(build_cache: Path) -> None:
    build_cache.mkdir(parents=True)
    build_cache.chmod(0o777)
    agent = zipapp._kept_or_zipped()
    assert agent.data == zipapp.zip_agent().data
    assert list(build_cache.iterdir()) == []


def test_a_warm_build_reads_no_distribution_metadata(build_cache: Path) -> None:
    """The second run in a fresh process finds the dependencies' files in its record and the
    zip in the cache: importlib.metadata (and its email and csv parsers) is never imported."""
    script = (
        "import sys; from reconciler.remote import zipapp; a = zipapp._kept_or_zipped(); "
        "print(a.sha256, 'importlib.metadata' in sys.modules, 'zipfile' in sys.modules)"
    )
    env = {**os.environ, "XDG_CACHE_HOME": str(build_cache.parents[1])}

    def run() -> list[str]:
        done = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True
        )
        return done.stdout.split()

    cold, warm = run(), run()
    assert cold[0] == warm[0] == zipapp.zip_agent().sha256
    assert cold[1:] == ["True", "True"] and warm[1:] == ["False", "False"]
    record = build_cache / zipapp.DEPENDENCIES_RECORD
    assert record.stat().st_mode & 0o777 == 0o600


def test_a_changed_folder_on_the_path_reads_the_metadata_again(
    build_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Installing or removing a distribution changes its folder's time: the kept answer is
    not used then (nor when the record is damaged)."""
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    first = zipapp._kept_or_zipped()
    calls = []
    real = zipapp.shipped_distributions

    def counted(root: str = zipapp.ROOT) -> tuple[object, ...]:
        calls.append(root)
        return real(root)

    monkeypatch.setattr(zipapp, "shipped_distributions", counted)
    assert zipapp._kept_or_zipped().data == first.data and calls == []
    (site / "new_dist-1.0.dist-info").mkdir()  # what an install adds
    os.utime(site, ns=(1, 1))  # a time of its own, even on a coarse clock
    assert zipapp._kept_or_zipped().data == first.data and len(calls) == 1
    (build_cache / zipapp.DEPENDENCIES_RECORD).write_text("{not json")
    assert zipapp._kept_or_zipped().data == first.data and len(calls) == 2

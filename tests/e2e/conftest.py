"""Fixtures and skip policy for the systemd-nspawn suite (see harness.py).

Every test under tests/e2e is marked ``e2e``. Without root, debootstrap, systemd-nspawn,
nsenter, tar or zstd the tests skip with the reason; with ``RECONCILER_E2E_REQUIRED=1`` (CI) they
fail instead.

Fixtures:
  ``container``        a booted Container with the defaults (stand-in gateway, fake tailscale)
  ``make_container``   factory: ``make_container(boot=True, **Container kwargs) -> Container``;
                       e.g. ``make_container(real_gateway=True, binds_ro=[(host, "/x")])``
  ``e2e_rootfs``       (session) path of the cached rootfs tarball, built on first use
  ``real_gateway_dir`` (session) path of the cached real clawdbot install, installed on first use
  ``npm_cache_dir``    (session) path of the offline npm cache (images.ensure_npm_cache)
  ``installed_reconciler`` (session) `reconciler` of the built wheel in a fresh venv with the
                       runtime dependencies only (images.runtime_venv)
  ``make_module_container`` (module) like ``make_container``, for one container shared by the
                       tests of a module (a scenario in steps); torn down after the module
Every container a test made is powered off (killed if it hangs) and its rootfs copy deleted
when the test ends, also on failure, Ctrl-C or SIGTERM; on failure the report gets each
container's nspawn log, failed units and journal tail.
"""

from __future__ import annotations

import compileall
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from . import harness, images

E2E_DIR = Path(__file__).resolve().parent
REQUIRED_ENV = "RECONCILER_E2E_REQUIRED"
CONTAINERS = pytest.StashKey[list[harness.Container]]()


def _missing_prerequisites() -> list[str]:
    why = []
    if os.geteuid() != 0:
        why.append(f"not root (euid {os.geteuid()}): systemd-nspawn needs root")
    for tool, pkg in (
        ("debootstrap", "debootstrap"),
        ("systemd-nspawn", "systemd-container"),
        ("nsenter", "util-linux"),
        ("zstd", "zstd"),
        ("tar", "tar"),
    ):
        if shutil.which(tool) is None:
            why.append(f"{tool} not found (apt-get install {pkg})")
    return why


_PREREQ: list[str] | None = None


def _prereq() -> list[str]:
    global _PREREQ
    if _PREREQ is None:
        _PREREQ = _missing_prerequisites()
    return _PREREQ


def _in_e2e(item: pytest.Item) -> bool:
    return E2E_DIR in Path(str(item.path)).resolve().parents


@pytest.hookimpl(tryfirst=True)  # before -m selection deselects by marker
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _in_e2e(item):
            item.add_marker(pytest.mark.e2e)


@pytest.hookimpl(tryfirst=True)  # before fixtures are set up
def pytest_runtest_setup(item: pytest.Item) -> None:
    if not _in_e2e(item):
        return
    why = _prereq()
    if why:
        msg = "e2e prerequisites missing: " + "; ".join(why)
        if os.environ.get(REQUIRED_ENV) == "1":
            pytest.fail(f"{msg} ({REQUIRED_ENV}=1, so this is a failure)", pytrace=False)
        pytest.skip(msg)


# `.ci/run` starts this suite in the background (`&`): a shell without job control starts
# background jobs with SIGINT ignored, and an ignored signal stays ignored across exec, so the
# children the tests press Ctrl-C on (SIGINT) never saw it and hung until their deadline. As in
# a terminal: the default (our children then start with SIGINT's default action too).
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

_sigterm_installed = False


def _install_sigterm_handler() -> None:
    """SIGTERM would end pytest without teardown: kill our containers first."""
    global _sigterm_installed
    if _sigterm_installed:
        return
    _sigterm_installed = True
    previous = signal.getsignal(signal.SIGTERM)

    def on_term(signum: int, frame: Any) -> None:
        harness.kill_all_live()
        for c in list(harness._LIVE.values()):
            c.destroy()
        if callable(previous):
            previous(signum, frame)
        else:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_term)


@pytest.fixture(scope="session")
def e2e_rootfs() -> Path:
    if not _prereq():
        harness.reap_stale()
    # /src is bound read-only: without byte code compiled here, every `reconciler` a container
    # runs compiles the whole package again (a few hundred ms of CPU each, hundreds of runs).
    compileall.compile_dir(images.REPO / "reconciler", quiet=1)
    return images.ensure_rootfs()


@pytest.fixture(scope="session")
def real_gateway_dir() -> Path:
    return images.ensure_gateway()


@pytest.fixture(scope="session")
def npm_cache_dir() -> Path:
    return images.ensure_npm_cache()


def _run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory every worker of this pytest run shares (each pytest-xdist worker has a
    session, and a base temporary directory, of its own inside the controller's)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session")
def reconciler_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reconciler's wheel, built from this checkout as `make dist` builds it, once per run
    (under a lock: two setuptools builds at once would share the checkout's build/)."""
    run = _run_dir(tmp_path_factory)
    out = run / "dist"
    with images.flock(run / "dist.lock"):
        if not list(out.glob("reconciler-*.whl")):
            building = Path(tempfile.mkdtemp(prefix="dist.", dir=run))
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "build",
                    "--wheel",
                    "--quiet",
                    "--no-isolation",
                    "--outdir",
                    str(building),
                ],
                cwd=images.REPO,
                check=True,
                stdout=subprocess.DEVNULL,
            )
            building.rename(out)
    (wheel,) = out.glob("reconciler-*.whl")
    return wheel


@pytest.fixture(scope="session")
def installed_reconciler(reconciler_wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`reconciler` from the built wheel in a fresh venv with the runtime dependencies only (no
    dev or test extras): what an admin who installed the wheel runs (one per run, as the wheel)."""
    run = _run_dir(tmp_path_factory)
    venv, done = run / "admin-venv", run / "admin-venv.done"
    with images.flock(run / "admin-venv.lock"):
        # Built in place (a venv's scripts name its path): `done` says a build finished.
        if not done.exists():
            shutil.rmtree(venv, ignore_errors=True)
            images.runtime_venv(reconciler_wheel, venv)
            done.touch()
    return venv / "bin" / "reconciler"


@pytest.fixture
def make_container(
    request: pytest.FixtureRequest, e2e_rootfs: Path
) -> Iterator[Callable[..., harness.Container]]:
    _install_sigterm_handler()
    made: list[harness.Container] = []
    request.node.stash[CONTAINERS] = made

    def factory(*, boot: bool = True, **kw: Any) -> harness.Container:
        if kw.get("real_gateway") is True:
            kw["real_gateway"] = request.getfixturevalue("real_gateway_dir")
        kw.setdefault("tarball", e2e_rootfs)
        c = harness.Container(**kw)
        made.append(c)
        c.prepare()
        if boot:
            try:
                c.boot()
            except BaseException:
                c.diagnostics()  # keep them: the report hook runs after teardown killed it
                raise
        return c

    try:
        yield factory
    finally:
        harness.destroy_all(made)


#: containers of module-scoped fixtures, by module name (the report hook shows their logs)
_MODULE_CONTAINERS: dict[str, list[harness.Container]] = {}


@pytest.fixture(scope="module")
def make_module_container(
    request: pytest.FixtureRequest, e2e_rootfs: Path
) -> Iterator[Callable[..., harness.Container]]:
    _install_sigterm_handler()
    made = _MODULE_CONTAINERS.setdefault(request.module.__name__, [])

    def factory(*, boot: bool = True, **kw: Any) -> harness.Container:
        if kw.get("real_gateway") is True:
            kw["real_gateway"] = request.getfixturevalue("real_gateway_dir")
        kw.setdefault("tarball", e2e_rootfs)
        c = harness.Container(**kw)
        made.append(c)
        c.prepare()
        if boot:
            try:
                c.boot()
            except BaseException:
                c.diagnostics()
                raise
        return c

    try:
        yield factory
    finally:
        try:
            harness.destroy_all(made)
        finally:
            _MODULE_CONTAINERS.pop(request.module.__name__, None)


@pytest.fixture
def container(make_container: Callable[..., harness.Container]) -> harness.Container:
    return make_container()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    rep = yield
    if rep.failed and rep.when in ("setup", "call"):
        module = getattr(getattr(item, "module", None), "__name__", "")
        for c in [*item.stash.get(CONTAINERS, []), *_MODULE_CONTAINERS.get(module, [])]:
            try:
                text = c.diagnostics()
            except Exception as e:  # never hide the real failure
                text = f"(diagnostics failed: {e!r})"
            rep.sections.append((f"e2e container {c.name}", text))
    return rep

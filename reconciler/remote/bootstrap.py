"""The few lines `python3 -c` runs on the target before our code is there.

Standard library only, and written for any Python 3 so that an old interpreter can say that it is
too old instead of failing on syntax. argv: HASH MODE [SIZE]. MODE `run`: the agent must already be
there; MODE `install`: stdin starts with SIZE bytes of agent, checked against HASH, then stored;
the rest of stdin is the request.

Where: the login user's cache, `~/.cache/reconciler/agent/HASH/` (XDG_CACHE_HOME is honoured),
holding the zipapp itself (SHIPPED_ARCHIVE, what the timer's install copies) and
its files extracted and byte-compiled: imports from there cost about half the CPU of imports from
the zip, which has no bytecode and is compiled on every run. Installed atomically: extracted and
compiled into a temporary folder beside it, which is renamed to HASH only when complete, so a
half-written folder is never used; two installs at once each make their own and the second
keeps the first's. The folder's contents are recorded as one digest of every file (`.tree`);
before each run the files are hashed again (a few milliseconds) and anything else, a damaged or
changed file, an extra or missing one, reads as "not there": the client sends the agent again and
the install replaces the folder. Bytecode is never written afterwards (dont_write_bytecode), so
nothing changes there between runs.

The cache must be the login user's own: every folder from the cache down owned by the user (the
cache folder itself may also be root's) and writable by nobody else, not a symlink; otherwise
the code there could have been put there by someone else, and it is refused, as is a cache the
user cannot write (exit 93 with the folder and the fix). Versions unused for a week are removed
at the next install.

Exit codes the client understands: 90 Python too old, 91 agent not there, 92 agent damaged on the
way, 93 the cache is not usable.
"""

from __future__ import annotations

from reconciler.facts.invocation import SHIPPED_ARCHIVE

TOO_OLD = 90
NOT_CACHED = 91
CORRUPT = 92
BAD_CACHE = 93

SOURCE = r"""
import hashlib, os, stat, sys
if sys.version_info < (3, 11):
    sys.stderr.write("reconciler: the target's python3 is %d.%d; 3.11 or newer is needed\n" % sys.version_info[:2])
    sys.exit(90)
digest, mode = sys.argv[1], sys.argv[2]
base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
folder = os.path.join(base, "reconciler", "agent")
home = os.path.join(folder, digest)
uid = os.geteuid()

def refuse(why):
    sys.stderr.write("reconciler: the agent cannot be kept in %s: %s. It is kept there between "
                     "runs: make it a folder that this account (uid %d) owns and only it can write\n"
                     % (folder, why, uid))
    sys.exit(93)

def trusted(path, owners):
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode):
        refuse("%s is not a folder" % path)
    if st.st_uid not in owners:
        refuse("%s belongs to uid %d" % (path, st.st_uid))
    if st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX:
        refuse("%s is writable by others" % path)

def check_cache():
    trusted(base, (uid, 0))
    trusted(os.path.dirname(folder), (uid,))
    trusted(folder, (uid,))

def tree_digest(top):
    files = []
    for where, dirs, names in os.walk(top):
        for name in dirs + names:
            if os.path.islink(os.path.join(where, name)):
                return None
        files.extend(os.path.join(where, name) for name in names)
    total = hashlib.sha256()
    for path in sorted(files):
        name = os.path.relpath(path, top)
        if name == ".tree":
            continue
        with open(path, "rb") as stream:
            data = stream.read()
        total.update(b"%s\0%d\0" % (name.encode(), len(data)))
        total.update(data)
    return total.hexdigest()

def intact(top):
    try:
        trusted(top, (uid,))
        with open(os.path.join(top, ".tree")) as recorded:
            return recorded.read().strip() == tree_digest(top)
    except OSError:
        return False

def remove(path):
    import shutil
    gone = "%s.%d.old" % (os.path.join(folder, "." + os.path.basename(path)), os.getpid())
    try:
        os.rename(path, gone)
    except FileNotFoundError:
        return
    shutil.rmtree(gone, ignore_errors=True)

if mode == "install":
    import compileall, io, shutil, time, zipfile
    data = sys.stdin.buffer.read(int(sys.argv[3]))
    if hashlib.sha256(data).hexdigest() != digest:
        sys.stderr.write("reconciler: the agent arrived damaged\n")
        sys.exit(92)
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
        check_cache()
        tmp = os.path.join(folder, ".%s.%d.tmp" % (digest, os.getpid()))
        os.mkdir(tmp, 0o700)
    except OSError as exc:
        refuse(exc.strerror or str(exc))
    try:
        fd = os.open(os.path.join(tmp, "@ARCHIVE@"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        zipfile.ZipFile(io.BytesIO(data)).extractall(tmp)
        # Recorded as the final path: tracebacks name where the files are.
        compileall.compile_dir(tmp, ddir=home, quiet=2)
        with open(os.path.join(tmp, ".tree"), "w") as out:
            out.write(tree_digest(tmp) + "\n")
        if os.path.isdir(home) and not intact(home):
            remove(home)
        try:
            os.rename(tmp, home)
        except OSError:
            if not intact(home):  # not another install's complete folder
                raise
    except OSError as exc:
        refuse(exc.strerror or str(exc))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    # Agents of other versions may still be running: remove only those unused for a week.
    week_ago = time.time() - 7 * 86400
    for name in os.listdir(folder):
        old = os.path.join(folder, name)
        if old != home and os.lstat(old).st_mtime < week_ago:
            if os.path.isdir(old) and not os.path.islink(old):
                remove(old)
            else:
                os.unlink(old)
else:
    try:
        check_cache()
    except FileNotFoundError:
        sys.exit(91)
    if not intact(home):
        sys.exit(91)
    try:
        os.utime(home)  # in use: kept by the next install's clean-up
    except OSError:
        pass
sys.dont_write_bytecode = True
sys.path.insert(0, home)
from reconciler.agent import main
sys.exit(main())
""".replace("@ARCHIVE@", SHIPPED_ARCHIVE)


def remote_argv(
    digest: str, *, python: str = "python3", install_size: int | None = None
) -> list[str]:
    """`python3 -c SOURCE HASH run` or `... HASH install SIZE`."""
    if install_size is None:
        return [python, "-c", SOURCE, digest, "run"]
    return [python, "-c", SOURCE, digest, "install", str(install_size)]

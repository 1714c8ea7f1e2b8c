"""Git revisions: apply the spec as committed at a ref, never the uncommitted edits beside it.

With `reconcile.source: {git: <clone>, ref: main}` the timer runs
`reconciler apply <clone>/<spec> --git-ref main ...`. For that run we:

1. find the work tree holding the spec and the spec's path inside it
   (`git rev-parse --show-toplevel --show-prefix`);
2. fetch when the clone has a remote (`origin`, else the first one); a failed fetch is reported
   and the run goes on with what was fetched before, so a network outage never stops the host
   from being kept as the last known revision says;
3. resolve the ref to a commit: `refs/remotes/<remote>/<ref>` first (the remote is the source
   of truth, as in Flux), then `<ref>` as a local branch, tag or commit;
4. read the spec's bytes at that commit (`git cat-file blob <commit>:<path>`: plumbing, so no
   pager, textconv or filters can alter them).

The revision is named as Flux names it: `main@sha1:<commit>`.

Every git call is a `Command` (argv list, timeout) run by a runner; the fetch is marked
mutating (it changes the clone), so only a `HostRunner` can run it.

Who runs git, and with what (`git_place`, `git_environment`): git executes what a repository's
config names (`core.fsmonitor`, `core.sshCommand`, hooks, a credential helper), so root never
runs it in a folder a user controls. The account is the first one other than root that owns a
component of the spec's path, as written or resolved (`path_chain`: the user whose home or link
it is, who could swap in any repository below it); only a path root alone controls gets git as
root. The environment is made here, never passed on: HOME, USER, LOGNAME and PATH of that
account, GIT_TERMINAL_PROMPT=0 (a timer has nobody to type a password), and when git runs as
ourselves our own ssh agent and proxy settings; none of root's variables (`GIT_DIR`,
`GIT_CONFIG_*`, `SUDO_UID`, with which git 2.35+ accepts a sudo user's repository as root's own,
`LD_PRELOAD`). A folder others may write to on the way (`/tmp`) becomes a
`GIT_CEILING_DIRECTORIES` entry: git never looks for a repository there or above, so a `.git`
planted in `/tmp` is never read. Besides, a user's fetch leaves objects the user owns.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Mapping
from pathlib import Path

from reconciler.core.command import Command, CommandResult
from reconciler.core.host import DEFAULT_PATH, Account, HostContext
from reconciler.frozen import frozen
from reconciler.shell.runner import HostRunner

GIT_TIMEOUT_S = 15.0
FETCH_TIMEOUT_S = 120.0

Run = Callable[[Command], CommandResult]


class SourceError(Exception):
    """The git source could not give us a spec to apply (the message says why)."""


@frozen
class WorkTree:
    """The work tree holding a file, and the file's path inside it (POSIX, no leading `./`)."""

    top: Path
    relpath: str


@frozen
class TreeState:
    """A plain run's spec in a work tree: the commit checked out and whether edits are pending."""

    commit: str | None  # None: a repository without commits yet
    dirty: bool


@frozen
class Revision:
    """The spec as committed at the resolved ref."""

    tree: WorkTree
    ref: str
    commit: str
    content: str  # the spec's text at `commit`
    remote: str | None = None
    fetch_error: str | None = None  # the fetch failed; `commit` is from the previous fetch

    @property
    def name(self) -> str:
        return f"{self.ref}@sha1:{self.commit}"

    @property
    def origin(self) -> Path:
        """Where the spec lives in the clone: the path the timer's ExecStart names."""
        return self.tree.top / self.tree.relpath

    @property
    def source(self) -> str:
        return f"{self.tree.top}@{self.ref}"


def git(cwd: Path, *args: str, mutating: bool = False, timeout_s: float = GIT_TIMEOUT_S) -> Command:
    """`git -C <cwd> <args>` as the clone's owner (scope user: see git_runner)."""
    return Command(
        ("git", "-C", str(cwd), *args), scope="user", mutating=mutating, timeout_s=timeout_s
    )


@frozen
class GitPlace:
    """Who runs git about a path, and where git must not look for a repository."""

    account: Account
    ceilings: tuple[str, ...] = ()  # folders others may write to (GIT_CEILING_DIRECTORIES)


def git_place(path: Path) -> GitPlace:
    """The account git runs as for `path`, and the ceilings (module docstring)."""
    from reconciler.facts.files import path_chain

    written = Path(os.path.abspath(path))
    # As written (a link of the user's on the way counts) and where it really is: git searches
    # upwards from the latter.
    links = path_chain(written).links + path_chain(Path(os.path.realpath(written))).links
    owner = next((link.uid for link in links if link.uid not in (None, 0)), 0)
    shared = {link.path for link in links if link.kind == "directory" and (link.mode or 0) & 0o022}
    return GitPlace(_account_of(owner), tuple(sorted(shared)))


# Variables of our own that git may use when it runs as us (never handed to another account).
_CARRIED = (
    "SSH_AUTH_SOCK", "LANG", "LC_ALL", "LC_CTYPE", "http_proxy", "https_proxy", "no_proxy",
    "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY",
)  # fmt: skip


def git_environment(place: GitPlace, own: Mapping[str, str]) -> dict[str, str]:
    """The whole environment git gets (module docstring); `own` is ours."""
    account = place.account
    env = {
        "HOME": str(account.home),
        "USER": account.name,
        "LOGNAME": account.name,
        "GIT_TERMINAL_PROMPT": "0",
    }
    if account.uid == os.geteuid():
        env["PATH"] = own.get("PATH") or DEFAULT_PATH
        env.update({name: own[name] for name in _CARRIED if name in own})
    else:  # root for a user: runuser is found here, the user's own PATH is set by the runner
        env["PATH"] = DEFAULT_PATH
    if place.ceilings:
        env["GIT_CEILING_DIRECTORIES"] = ":".join(place.ceilings)
    return env


def git_runner(path: Path, env: Mapping[str, str] | None = None) -> HostRunner:
    """A runner for git about `path`: as `git_place`'s account (via runuser when we are root
    and it is a user), with `git_environment` made from ours (`env`, else os.environ)."""
    place = git_place(path)
    host = HostContext(
        hostname=socket.gethostname(),
        invoker=Account.current(),
        user=place.account,
        user_name=place.account.name,
    )
    return HostRunner(host, env=git_environment(place, os.environ if env is None else env))


def work_tree(path: Path, run: Run) -> WorkTree | None:
    """The work tree holding `path` (None: not in one, or git is not installed)."""
    result = run(git(path.parent, "rev-parse", "--show-toplevel", "--show-prefix"))
    if not result.ok:
        return None
    lines = result.stdout.splitlines()
    if not lines:
        return None
    prefix = lines[1] if len(lines) > 1 else ""
    return WorkTree(Path(lines[0]), prefix + path.name)


def tree_state(tree: WorkTree, run: Run) -> TreeState:
    """HEAD of the tree and whether tracked files differ from it (untracked files do not count:
    they cannot change what a commit holds)."""
    head = run(git(tree.top, "rev-parse", "--verify", "--quiet", "HEAD"))
    status = run(git(tree.top, "status", "--porcelain", "--untracked-files=no"))
    commit = head.stdout.strip() if head.ok and head.stdout.strip() else None
    return TreeState(commit, dirty=bool(status.stdout.strip()) or not status.ok)


def checkout(spec_path: Path, ref: str, run: Run) -> Revision:
    """Fetch (when there is a remote), resolve `ref`, and read the spec as committed there."""
    tree = work_tree(spec_path, run)
    if tree is None:
        raise SourceError(f"{spec_path} is not inside a git work tree (or git is not installed)")
    remotes = run(git(tree.top, "remote"))
    remote = _pick_remote(remotes.stdout.split()) if remotes.ok else None
    fetch_error = None
    if remote is not None:
        fetched = run(
            git(
                tree.top,
                "fetch",
                "--quiet",
                "--prune",
                "--no-recurse-submodules",
                remote,
                mutating=True,
                timeout_s=FETCH_TIMEOUT_S,
            )
        )
        if not fetched.ok:
            fetch_error = f"git fetch {remote}: {fetched.summary()}"
    commit = resolve(tree.top, ref, remote, run)
    if commit is None:
        where = f" (nor {remote}/{ref})" if remote else ""
        fetch_note = f"; {fetch_error}" if fetch_error else ""
        raise SourceError(f"ref {ref!r} does not name a commit in {tree.top}{where}{fetch_note}")
    blob = run(git(tree.top, "cat-file", "blob", f"{commit}:{tree.relpath}"))
    if not blob.ok:
        raise SourceError(
            f"{tree.relpath} does not exist at {ref}@sha1:{commit} in {tree.top} ({blob.summary()})"
        )
    return Revision(tree, ref, commit, blob.stdout, remote=remote, fetch_error=fetch_error)


def resolve(top: Path, ref: str, remote: str | None, run: Run) -> str | None:
    """The commit `ref` names: the remote-tracking branch first, then a local branch/tag/sha."""
    candidates = ([f"refs/remotes/{remote}/{ref}"] if remote else []) + [ref]
    for candidate in candidates:
        result = run(
            git(
                top,
                "rev-parse",
                "--verify",
                "--quiet",
                "--end-of-options",  # a ref from the spec can never be read as an option
                f"{candidate}^{{commit}}",
            )
        )
        if result.ok and result.stdout.strip():
            return result.stdout.strip()
    return None


def _pick_remote(remotes: list[str]) -> str | None:
    if "origin" in remotes:
        return "origin"
    return remotes[0] if remotes else None


def _account_of(uid: int) -> Account:
    import pwd

    try:
        entry = pwd.getpwuid(uid)
    except KeyError:
        return Account(str(uid), uid, uid, Path("/"))
    return Account(entry.pw_name, entry.pw_uid, entry.pw_gid, Path(entry.pw_dir))


@frozen
class RepositoryPlace:
    """Where a path is in its git repository: the work tree, the path inside it, and the
    repository's root commit(s), which are the same in every clone (a URL is not)."""

    tree: WorkTree
    root_commits: tuple[str, ...]

    @property
    def repository(self) -> str | None:
        return ",".join(self.root_commits) or None


def place_of(path: Path, run: Run) -> RepositoryPlace | None:
    """The repository place of the file `path` (None: not in a work tree, or no git)."""
    tree = work_tree(path, run)
    return None if tree is None else RepositoryPlace(tree, _root_commits(tree.top, run))


def folder_place(folder: Path, run: Run) -> RepositoryPlace | None:
    """The repository place of the folder itself (its `relpath` is empty)."""
    result = run(git(folder, "rev-parse", "--show-toplevel"))
    if not result.ok or not result.stdout.strip():
        return None
    top = Path(result.stdout.strip())
    return RepositoryPlace(WorkTree(top, ""), _root_commits(top, run))


def _root_commits(top: Path, run: Run) -> tuple[str, ...]:
    roots = run(git(top, "rev-list", "--max-parents=0", "HEAD"))
    return tuple(sorted(roots.stdout.split())) if roots.ok else ()

"""Documentation points only at things that exist.

- Every relative link in every Markdown file of the repository resolves to a file or folder, and
  a `#anchor` into a Markdown file names one of its headings (GitHub's anchor rules).
- No file cites a document that lives outside the repository (the `REFERENCE.md` of the
  development machine: its facts are in docs/host-facts.md), and every repository path a file
  names under docs/, schemas/, reconciler/, tests/, bench/, scripts/ or .ci/ exists.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SKIP_DIRS = {
    ".git",
    ".venv",
    "node_modules",
    "__pycache__",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
    ".hypothesis",
    "build",
    "dist",
}


def repo_files() -> Iterator[Path]:
    """The repository's own files: no venv, caches or build output, no symlinks."""
    for path in sorted(REPO.rglob("*")):
        rel = path.relative_to(REPO)
        if any(part in SKIP_DIRS or part.endswith(".egg-info") for part in rel.parts):
            continue
        if any(part.startswith(".venv") for part in rel.parts):
            continue
        if path.is_symlink() or not path.is_file():
            continue
        yield path


def markdown_files() -> list[Path]:
    return [p for p in repo_files() if p.suffix == ".md"]


def text_of(path: Path) -> str | None:
    """The file as text, or None for binary or very large files."""
    data = path.read_bytes()
    if len(data) > 2_000_000 or b"\0" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


_FENCE = re.compile(r"^\s*(```|~~~)")


def prose_lines(markdown: str) -> Iterator[tuple[int, str]]:
    """(line number, line) outside fenced code blocks, with inline code spans blanked."""
    fenced = False
    for number, line in enumerate(markdown.splitlines(), start=1):
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            yield number, re.sub(r"`[^`]*`", lambda m: " " * len(m.group(0)), line)


def github_anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives the headings: lowercase, punctuation dropped, spaces to '-'."""
    anchors: set[str] = set()
    seen: dict[str, int] = {}
    fenced = False
    for line in markdown.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
            continue
        heading = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if fenced or not heading:
            continue
        text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.group(1))
        slug = re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_REF_DEF = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s.*)?$")


def relative_links(path: Path) -> Iterator[tuple[int, str]]:
    markdown = path.read_text()
    for number, line in prose_lines(markdown):
        targets = _LINK.findall(line)
        ref = _REF_DEF.match(line)
        if ref:
            targets.append(ref.group(1))
        for target in targets:
            if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target):  # https:, mailto:, ...
                continue
            yield number, target


def broken_links(path: Path) -> list[str]:
    broken: list[str] = []
    for number, target in relative_links(path):
        file_part, _, anchor = target.partition("#")
        resolved = (path.parent / file_part).resolve() if file_part else path
        where = f"{path.relative_to(REPO)}:{number}: {target}"
        if not resolved.exists():
            broken.append(f"{where} (no such file)")
        elif (
            anchor
            and resolved.suffix == ".md"
            and resolved.is_file()
            and anchor not in github_anchors(resolved.read_text())
        ):
            broken.append(f"{where} (no such heading in {resolved.name})")
    return broken


def test_the_repository_has_markdown_to_check() -> None:
    names = {p.relative_to(REPO).as_posix() for p in markdown_files()}
    assert {"README.md", "docs/spec-reference.md", "tests/fakehost/README.md"} <= names


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: p.relative_to(REPO).as_posix())
def test_relative_links_resolve(path: Path) -> None:
    broken = broken_links(path)
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_the_link_checker_finds_broken_links(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# A title\n\n## Second `part`\n")
    page = tmp_path / "README.md"
    page.write_text(
        "[ok](docs/a.md) [ok](docs/a.md#second-part) [ok](#top) [web](https://x.invalid/y)\n"
        "[gone](docs/b.md) [bad anchor](docs/a.md#third)\n"
        "`[in code](nowhere.md)`\n```\n[in a fence](nowhere.md)\n```\n"
        "# Top\n[ref]: ../outside.md\n"
    )
    global REPO
    saved, REPO = REPO, tmp_path
    try:
        found = broken_links(page)
    finally:
        REPO = saved
    assert found == [
        "README.md:2: docs/b.md (no such file)",
        "README.md:2: docs/a.md#third (no such heading in a.md)",
        "README.md:8: ../outside.md (no such file)",
    ]


# A repository path as prose names it: `docs/x.md`, `tests/e2e/harness.py` (not `specs/...`:
# examples name the user's own specs). Placeholders (`NAME`, `<name>`, `*`) are not paths.
_CITED_PATH = re.compile(
    r"(?<![\w./:-])((?:docs|schemas|reconciler|tests|bench|scripts|\.ci)/[\w./-]*?"
    r"\.(?:md|py|json|yaml|yml|toml|sh|txt|jsonl))(?![\w/-])"
)
_OUTSIDE = re.compile(r"\bREFERENCE(?:\.md|\s*§|\s+section|\b)")
_THIS_FILE = Path(__file__).resolve()


def cited_problems() -> list[str]:
    problems: list[str] = []
    for path in repo_files():
        if path.resolve() == _THIS_FILE:
            continue
        text = text_of(path)
        if text is None:
            continue
        rel = path.relative_to(REPO).as_posix()
        for number, line in enumerate(text.splitlines(), start=1):
            if _OUTSIDE.search(line):
                problems.append(f"{rel}:{number}: cites REFERENCE, which is not in the repository")
            for cited in _CITED_PATH.findall(line):
                if re.search(r"[A-Z]{3,}|[<>*{}]", cited):
                    continue
                if not (REPO / cited.rstrip(".")).exists():
                    problems.append(f"{rel}:{number}: cites {cited}, which does not exist")
    return problems


def test_no_file_cites_a_document_that_is_not_in_the_repository() -> None:
    problems = cited_problems()
    assert not problems, "\n".join(problems)

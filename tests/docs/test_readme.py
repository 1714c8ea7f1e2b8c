"""README.md stays a front page: small, and leading to every page in docs/."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"


def test_readme_is_under_12_kb() -> None:
    size = README.stat().st_size
    assert size < 12 * 1024, f"README.md is {size} bytes: move detail to docs/ and link it"


def test_readme_links_every_page_in_docs() -> None:
    linked = set(re.findall(r"\]\((docs/[^)#\s]+)", README.read_text()))
    pages = {p.relative_to(REPO).as_posix() for p in (REPO / "docs").iterdir() if p.is_file()}
    assert sorted(pages - linked) == [], "link these pages from the Documentation list of README.md"

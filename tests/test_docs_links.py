"""Every relative link in README.md and docs/*.md points to a file (and heading) that exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
_FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)


def _prose(path: Path) -> str:
    """The page without its fenced code blocks (their brackets are not links)."""
    return _FENCE.sub("", path.read_text())


def _anchors(path: Path) -> set[str]:
    """GitHub's anchors for the page's headings: lowercase, punctuation dropped, spaces -> '-'."""
    anchors = set()
    for heading in re.findall(r"^#{1,6} (.+)$", _prose(path), re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        anchors.add(slug)
    return anchors


def _relative_links(path: Path) -> list[str]:
    return [
        t for t in _LINK.findall(_prose(path)) if not re.match(r"^[a-z][a-z0-9+.-]*:", t)
    ]  # http:, https:, mailto: ...


def test_the_pages_exist() -> None:
    names = {p.relative_to(ROOT).as_posix() for p in PAGES}
    for name in (
        "operations",
        "api",
        "configuration",
        "billing",
        "deployment",
        "guarantees",
        "benchmark",
        "README",
    ):
        assert f"docs/{name}.md" in names
    assert (ROOT / "LICENSE").is_file()


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_resolve(page: Path) -> None:
    broken = []
    for target in _relative_links(page):
        file_part, _, anchor = target.partition("#")
        linked = (page.parent / file_part).resolve() if file_part else page
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in _anchors(linked):
            broken.append(f"{target}: no heading #{anchor} in {linked.name}")
    assert not broken, f"{page.name}: broken links: {broken}"


def test_readme_is_a_front_page() -> None:
    readme = ROOT / "README.md"
    assert len(readme.read_text().splitlines()) <= 300
    linked = {t.partition("#")[0] for t in _relative_links(readme)}
    for page in PAGES[1:]:
        if page.name != "README.md":
            assert f"docs/{page.name}" in linked, f"README.md does not link docs/{page.name}"

"""The README and docs/ hold together: the README stays short, and every link lands somewhere."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README_MAX_LINES = 300
# Pages that other work adds; linked already, checked once they exist.
PAGES_IN_PREPARATION = {"evaluation-suites.md", "speed.md", "simulators-and-greyscale.md"}

_FENCE = re.compile(r"^```.*?^```", re.S | re.M)
_LINK = re.compile(r"\]\(([^)\s]+)\)")


def markdown_files() -> list[Path]:
    """README.md and every page under docs/."""
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def anchors(text: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    headings = re.findall(r"^#+ (.+)$", _FENCE.sub("", text), re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def broken_links(page: Path, text: str) -> list[str]:
    """Relative links of ``text`` (from ``page``) whose file or heading does not exist."""
    broken = []
    for link in _LINK.findall(_FENCE.sub("", text)):
        if re.match(r"[a-z]+:", link):
            continue  # http(s), mailto: outside the repository
        path, _, anchor = link.partition("#")
        target = (page.parent / path).resolve() if path else page
        if not target.exists():
            if target.name not in PAGES_IN_PREPARATION:
                broken.append(f"{link} (no such file)")
            continue
        if anchor and target.suffix == ".md" and anchor not in anchors(target.read_text()):
            broken.append(f"{link} (no heading with that anchor in {target.name})")
    return broken


def test_readme_is_at_most_300_lines() -> None:
    n = len((REPO / "README.md").read_text(encoding="utf-8").splitlines())
    assert n <= README_MAX_LINES, (
        f"README.md has {n} lines (at most {README_MAX_LINES}): move details to a page in docs/ "
        "and link it"
    )


@pytest.mark.parametrize("page", markdown_files(), ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_link_lands(page: Path) -> None:
    broken = broken_links(page, page.read_text(encoding="utf-8"))
    assert not broken, f"{page.relative_to(REPO)}: broken links: " + "; ".join(broken)


def test_every_docs_page_is_linked_from_the_readme_or_the_index() -> None:
    linked = {
        (source.parent / link.partition("#")[0]).resolve()
        for source in (REPO / "README.md", REPO / "docs" / "index.md")
        for link in _LINK.findall(source.read_text(encoding="utf-8"))
    }
    orphans = [p.name for p in (REPO / "docs").glob("*.md") if p.name != "index.md"]
    orphans = [name for name in orphans if (REPO / "docs" / name).resolve() not in linked]
    assert not orphans, f"docs pages no one links to (add them to docs/index.md): {orphans}"


def test_the_link_checker_finds_a_missing_file_and_a_missing_heading(tmp_path: Path) -> None:
    page = tmp_path / "a.md"
    (tmp_path / "b.md").write_text("# Title\n\n## Some heading (here)\n\n```\n## not one\n```\n")
    text = "[ok](b.md#some-heading-here) [file](c.md) [head](b.md#not-one) [web](https://x.org)"
    assert broken_links(page, text) == [
        "c.md (no such file)",
        "b.md#not-one (no heading with that anchor in b.md)",
    ]

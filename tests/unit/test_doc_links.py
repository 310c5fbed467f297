"""The documentation's links hold in a clone: every relative link of README.md and docs/
names a file or directory of the repository (and, into a Markdown page, one of its headings),
nothing points outside the repository, and every path of the README's layout table exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])
#: `[text](target)`, not an image; the target up to a space (a title may follow) or `)`.
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s[^)]*)?\)")
CODE = re.compile(r"```.*?```", re.S)


def links(page: Path) -> list[str]:
    """The relative link targets of `page`, outside fenced code."""
    text = CODE.sub("", page.read_text(encoding="utf-8"))
    return [
        target
        for target in LINK.findall(text)
        if not re.match(r"^[a-z][a-z0-9+.-]*:", target)  # http:, https:, mailto: ...
    ]


def slug(heading: str) -> str:
    """A heading's anchor as GitHub makes it."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = CODE.sub("", page.read_text(encoding="utf-8"))
    return {slug(h) for h in re.findall(r"^#+ (.+)$", text, re.M)}


def test_the_pages_are_found() -> None:
    names = {p.relative_to(ROOT).as_posix() for p in PAGES}
    assert {"README.md", "docs/architecture.md", "docs/protocol.md"} <= names


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_resolves(page: Path) -> None:
    broken: list[str] = []
    for target in links(page):
        path, _, anchor = target.partition("#")
        found = (page.parent / path).resolve() if path else page
        if ROOT not in (found, *found.parents):
            broken.append(f"{target}: outside the repository")
        elif not found.exists():
            broken.append(f"{target}: no such file")
        elif anchor and found.suffix == ".md" and anchor not in anchors(found):
            broken.append(f"{target}: no heading #{anchor} in {found.name}")
    assert not broken, f"{page.relative_to(ROOT)}: broken links {broken}"


def test_no_page_sends_readers_outside_the_clone() -> None:
    outside = [
        p.relative_to(ROOT).as_posix()
        for p in PAGES
        if "shared/DESIGN.md" in p.read_text(encoding="utf-8")
    ]
    assert not outside, f"these pages cite a design document a clone does not have: {outside}"


def test_the_readme_layout_table_is_true() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    table = text.split("## Layout", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    assert len(rows) >= 8, "the README's layout table is gone"
    paths = [
        token
        for line in rows
        for token in re.findall(r"`([^`\s<>]+/[^`\s<>]*)`", line)
        if not token.startswith(("@", "/"))
    ]
    missing = [p for p in paths if not (ROOT / p).exists()]
    assert not missing, f"the README's layout table lists paths that do not exist: {missing}"
    first_column = [re.match(r"\| `([^`]+)`", line).group(1) for line in rows]  # type: ignore[union-attr]
    top = {p.name + "/" for p in ROOT.iterdir() if p.is_dir() and not p.name.startswith(".")}
    top -= {"node_modules/", "var/", "test-artifacts/"}
    unlisted = sorted(
        d for d in top if not any(c.startswith(d) for c in first_column) and _tracked(d)
    )
    assert not unlisted, f"top-level directories missing from the layout table: {unlisted}"


def _tracked(directory: str) -> bool:
    """Whether the directory holds anything but caches and build output (a clone has it)."""
    return any(
        f.is_file() and "__pycache__" not in f.parts and ".egg-info" not in str(f)
        for f in (ROOT / directory).rglob("*")
    )

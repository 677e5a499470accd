"""README.md and docs/ stay true to the code and to each other: links, settings, endpoints,
error types, the index, the README's length."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from local_ml_flow.api.app import create_app
from local_ml_flow.api.errors import _STATUS
from local_ml_flow.settings import Settings
from tests.conftest import ROOT

DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
# Variables of the scripts and compose, not of Settings, that configuration.md lists too.
SCRIPT_VARIABLES = {"LMF_LOCALSTACK_PORT"}


def without_fences(markdown: str) -> str:
    return re.sub(r"^```.*?^```", "", markdown, flags=re.S | re.M)


def prose(markdown: str) -> str:
    """The text outside fenced code blocks and inline code (no links are read there)."""
    return re.sub(r"`[^`\n]*`", "", without_fences(markdown))


def anchors(markdown: str) -> set[str]:
    """GitHub's anchors of a page's headings: lowercase, punctuation dropped, spaces to
    hyphens, repeats numbered."""
    found: set[str] = set()
    for heading in re.findall(r"^#{1,6} (.+)$", without_fences(markdown), re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        candidate, n = slug, 0
        while candidate in found:
            n += 1
            candidate = f"{slug}-{n}"
        found.add(candidate)
    return found


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_points_to_a_file_and_heading_that_exist(page: Path):
    broken = []
    for target in LINK.findall(prose(page.read_text())):
        if re.match(r"[a-z]+:", target):  # https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists():
            broken.append(f"{target}: no such file")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved.read_text()):
            broken.append(f"{target}: no heading with that anchor in {resolved.name}")
    assert not broken, f"{page.relative_to(ROOT)}: " + "; ".join(broken)


def test_the_docs_index_lists_every_document():
    index = (DOCS / "README.md").read_text()
    listed = set(re.findall(r"\]\(([\w-]+\.md)\)", index))
    documents = {p.name for p in DOCS.glob("*.md")} - {"README.md"}
    assert documents - listed == set(), "docs/README.md does not list them"
    assert listed - documents == set(), "docs/README.md lists documents that do not exist"


def test_the_configuration_table_names_every_setting():
    rows = (DOCS / "configuration.md").read_text().splitlines()
    first_cells = [row.split(" | ")[0] for row in rows if row.startswith("| `LMF_")]
    named = set(re.findall(r"`(LMF_[A-Z0-9_]+)`", "\n".join(first_cells)))
    settings = {f"LMF_{name.upper()}" for name in Settings.model_fields}
    assert settings - named == set(), "not in docs/configuration.md's table"
    assert named - settings - SCRIPT_VARIABLES == set(), "in the table, but not a setting"


def test_the_api_page_names_every_endpoint_and_error_type():
    page = (DOCS / "api.md").read_text()
    schema = create_app(settings=Settings(_env_file=None)).openapi()
    missing = [
        f"{method.upper()} {path}"
        for path, operations in schema["paths"].items()
        for method in operations
        if not re.search(rf"`{method.upper()} {re.escape(path)}[`?]", page)
    ]
    assert not missing, "endpoints not in docs/api.md"
    unnamed = [kind.__name__ for kind in _STATUS if f"`{kind.__name__}`" not in page]
    assert not unnamed, "error types of api/errors.py not in docs/api.md"


def test_the_readme_stays_short():
    """The issue "Five minutes to a first result": the README is for users; the rest is docs/."""
    lines = (ROOT / "README.md").read_text().count("\n")
    assert lines <= 250, f"README.md has {lines} lines: move reference material to docs/"

"""The tutorials quote the code beside each equation; the quotes must stay true to the code."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted((ROOT / "docs").glob("*.md"))


def flat(code: str) -> str:
    """Lines without their indentation, so an excerpt from inside a function still matches."""
    return "\n".join(line.strip() for line in code.strip().splitlines())


SOURCES = [flat(p.read_text()) for p in (ROOT / "src" / "difusion").rglob("*.py")]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_quoted_code_is_verbatim_in_the_sources(doc):
    blocks = re.findall(r"```python\n(.*?)```", doc.read_text(), flags=re.S)
    quotes = [b for b in blocks if not b.lstrip().startswith(("from difusion", "import "))]
    for quote in quotes:
        assert any(flat(quote) in s for s in SOURCES), f"{doc.name}: not in src/:\n{quote[:400]}"


def test_the_check_can_fail():
    assert not any(flat("x = mean  # a line the code does not have") in s for s in SOURCES)

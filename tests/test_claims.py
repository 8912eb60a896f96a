"""The claims registry (tests/claims.py): numbers in README.md and docs/ come from results files.

A page's measured number is sourced by an explicit comment after it or by a results folder the page
names; what is neither must be listed in docs/claims-unsourced.txt, a list that may only shrink.
"""

from __future__ import annotations

from collections import Counter

import pytest

from tests import claims

PAGES = claims.pages()


def test_the_registry_matches_the_pages():
    """No unsourced number that is not listed; no listed number that is gone."""
    assert claims.registry_problems(claims.current(), claims.registry()) == []


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(claims.ROOT)))
def test_explicit_sources_hold(page):
    assert claims.explicit_problems(page.read_text()) == []


def test_readme_headline_numbers_are_sourced():
    """README's first sections (up to the usage guide) name a results file for every number."""
    head = (claims.ROOT / "README.md").read_text().split("\n## Use it")[0]
    assert claims.unsourced(head) == []


def test_a_new_unsourced_number_fails():
    page = "docs/flow.md"
    found = claims.current()
    found[page] = [*found[page], ("12.34", "a new FID of 12.34 nobody measured")]
    problems = claims.registry_problems(found, claims.registry())
    assert problems == [f"{page}: 12.34 has no source: ...a new FID of 12.34 nobody measured..."]


def test_a_number_that_drops_out_must_be_unlisted():
    listed = claims.registry()
    listed["docs/flow.md"] = listed.get("docs/flow.md", Counter()) + Counter({"77.7": 1})
    problems = claims.registry_problems(claims.current(), listed)
    assert problems == [
        "docs/flow.md: 77.7 is listed in claims-unsourced.txt x1 but gone: unlist it"
    ]


def test_a_folder_the_page_names_sources_its_numbers():
    md = "FID-FMNIST {} at 20 steps ([results](docs/results/sampler-table/README.md))."
    value = next(
        r
        for r in claims.json.loads((claims.RESULTS / "sampler-table/results.json").read_text())
        if isinstance(r, dict)
    )
    number = value["fid_domain"]
    shown = f"{number:.4f}"
    assert claims.unsourced(md.format(shown)) == []
    wrong = f"{number + 0.5:.4f}"
    assert [n for n, _ in claims.unsourced(md.format(wrong))] == [wrong]
    assert [n for n, _ in claims.unsourced(f"FID-FMNIST {shown} at 20 steps.")] == [shown]


def test_an_explicit_source_that_differs_fails():
    good = "13.38<!-- source: learning-curve/results.json label=10min fid_domain -->"
    assert claims.explicit_problems(good) == []
    assert claims.unsourced(good) == []
    bad = good.replace("13.38", "13.83")
    assert len(claims.explicit_problems(bad)) == 1
    missing = good.replace("learning-curve", "no-such-folder")
    assert "no file" in claims.explicit_problems(missing)[0]


def test_what_is_not_a_claim():
    md = (
        "Sec. 3.4 and arXiv 2406.08929; `lr=0.001` in code; $\\beta = 0.02$ in math; "
        "version 2.13.0; 3.17<!-- cite: Ho et al. 2020, Table 2 -->.\n"
        "```\nloss 0.0742\n```\n"
    )
    assert claims.unsourced(md) == []
    assert [n for n, _ in claims.unsourced("a loss of 0.0742 here")] == ["0.0742"]


def test_a_number_rounded_twice_is_not_sourced():
    """A results README's 46.45 was itself rounded (from 46.448): a page's 46.5 must come from
    the JSON value, which says 46.4. Rounding a README number once is fine otherwise."""
    assert claims.text_shows("46.45", "46.45") and claims.text_shows("0.1827", "0.183")
    assert not claims.text_shows("46.45", "46.5") and not claims.text_shows("0.0815", "0.082")
    assert claims.shown_as(46.448, "46.4") and not claims.shown_as(46.448, "46.5")

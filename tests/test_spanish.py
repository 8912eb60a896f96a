"""The Spanish study track (docs/es/): its pages keep their outline, numbers and code true.

- docs/es/ddpm.md has exactly the level-1 and level-2 headings of its outline (docs/es/outline.txt,
  copied from the study project's seed), in order, and no section is left without prose.
- Every number the post takes from a results file carries its source in an HTML comment right after
  it, ``13.38<!-- fuente: learning-curve/results.json label=10min fid_domain -->`` (a row of a
  results.json by its label, then the field) or ``0.0742<!-- fuente: ddpm-fmnist-main-job/report.md
  "last logged loss: {}" -->`` (the number at ``{}`` in a text file), and must equal that number
  rounded to the digits the post shows. The post links each results folder it quotes and names the
  command that made it. A field may walk into nested objects and lists,
  ``step-by-step/results.json target_noise.1.x0`` (a list by its index, a key with a dot in it as
  it is), and a number may be written in e-notation, ``2.29e-06``, compared at its shown digits.
  These checks run on every Spanish page, not only the post.
- The Python quoted in the Spanish pages is verbatim in src/ (as tests/test_docs.py does for docs/).
- Each Spanish page with an English twin names the commit of the twin it matches; the glossary has
  30 or more terms, each one used in the Spanish pages.
Every check is a function that returns its problems; the ``*_can_fail`` tests feed it a broken copy.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests import claims

ROOT = Path(__file__).resolve().parents[1]
ES = ROOT / "docs" / "es"
RESULTS = ROOT / "docs" / "results"
POST = (ES / "ddpm.md").read_text()
PAGES = sorted(p for p in ES.glob("*.md") if p.name != "glosario.md")

HEADING = re.compile(r"^(#{1,6}) +(.+?) *$")
FENCE = re.compile(r"^\s*(```|~~~)")
NUMBER = claims.NUMBER
SOURCED = re.compile(rf"(?<![\w.])({NUMBER})<!-- fuente: (\S+) (.*?) -->")


def outline() -> list[tuple[int, str]]:
    """(level, text) of every heading in docs/es/outline.txt, in order."""
    lines = (ES / "outline.txt").read_text().splitlines()
    return [(len(m[1]), m[2]) for m in map(HEADING.match, lines) if m]


def sections(md: str) -> list[tuple[int, str, str]]:
    """(level, heading text, body up to the next heading) of a Markdown page; fenced code and the
    front matter are not searched for headings."""
    lines = md.splitlines()
    if lines and lines[0] == "---":  # front matter: up to the closing ---
        lines = lines[lines.index("---", 1) + 1 :]
    found: list[tuple[int, str, list[str]]] = []
    in_code = False
    for line in lines:
        if FENCE.match(line):
            in_code = not in_code
        m = None if in_code else HEADING.match(line)
        if m:
            found.append((len(m[1]), m[2], []))
        elif found:
            found[-1][2].append(line)
    return [(level, text, "\n".join(body)) for level, text, body in found]


def prose_words(body: str) -> int:
    """Words of running text in a section: without code blocks, display math and HTML comments."""
    body = re.sub(r"```.*?```", " ", body, flags=re.S)
    body = re.sub(r"\$\$.*?\$\$", " ", body, flags=re.S)
    body = re.sub(r"<!--.*?-->", " ", body, flags=re.S)
    return len(re.findall(r"[A-Za-zÁÉÍÓÚÜÑáéíóúüñ]{2,}", body))


def outline_problems(md: str, expected: list[tuple[int, str]], min_words: int = 25) -> list[str]:
    """What is wrong with the post's headings against the outline: missing, out of order, extra
    (at the outline's levels), or a section with fewer than ``min_words`` words of its own prose."""
    levels = {level for level, _ in expected}
    found = sections(md)
    got = [(level, text) for level, text, _ in found if level in levels]
    problems = []
    if got != expected:
        missing = [h for h in expected if h not in got]
        extra = [h for h in got if h not in expected]
        if missing:
            problems.append(f"missing headings: {missing}")
        if extra:
            problems.append(f"headings not in the outline: {extra}")
        if not missing and not extra:
            first = next(i for i, (a, b) in enumerate(zip(got, expected, strict=True)) if a != b)
            problems.append(
                f"out of order at heading {first + 1}: {got[first]} where the outline "
                f"has {expected[first]}"
            )
    for level, text, body in found:
        if (level, text) in expected and prose_words(body) < min_words:
            problems.append(f"section {'#' * level} {text} is empty ({prose_words(body)} words)")
    return problems


def test_outline_copy_lists_the_seed_headings():
    assert len(outline()) == 21
    assert outline()[0] == (1, "Primeras aclaraciones")
    assert outline()[-1] == (1, "Fuentes recomendadas")


def test_the_post_follows_its_outline():
    assert outline_problems(POST, outline()) == []


def test_the_outline_check_can_fail():
    expected = outline()
    dropped = POST.replace("\n## Scheduler\n", "\n")
    assert any("missing" in p for p in outline_problems(dropped, expected))
    renamed = POST.replace("# UNET: la primera arquitecura utilizada", "# UNET: la arquitectura")
    assert any("missing" in p for p in outline_problems(renamed, expected))
    swapped = POST.replace("## Entrenamiento", "## TMP").replace(
        "## Generación", "## Entrenamiento"
    )
    swapped = swapped.replace("## TMP", "## Generación")
    assert any("out of order" in p for p in outline_problems(swapped, expected))
    extra = POST.replace("### Atención", "## Atención")
    assert any("not in the outline" in p for p in outline_problems(extra, expected))
    emptied = re.sub(r"(# Algoritmos\n).*?(\n## Entrenamiento)", r"\1\2", POST, flags=re.S)
    assert any("# Algoritmos is empty" in p for p in outline_problems(emptied, expected))


# --------------------------------------------------------------------------------------------
# Numbers and their sources
# --------------------------------------------------------------------------------------------


def number_problems(md: str) -> list[str]:
    """Sourced numbers that differ from their source at the post's precision, or whose source
    cannot be read (tests/claims.py's check); a table row that quotes a source must source every
    number in it."""
    problems = claims.explicit_problems(md)
    for row in (line for line in md.splitlines() if line.startswith("|") and "fuente:" in line):
        for cell in row.strip("|").split("|"):
            if re.fullmatch(rf"\s*{NUMBER}\s*", cell):
                problems.append(f"a number without its source in a quoted row: {cell.strip()}")
    return problems


def test_every_sourced_number_equals_its_results_file():
    assert len(SOURCED.findall(POST)) >= 30
    assert number_problems(POST) == []


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_page_sources_its_numbers(page):
    assert number_problems(page.read_text()) == []


def test_the_number_check_can_fail():
    assert "13.38<!--" in POST
    assert any(
        "13.39 is 13.38" in p for p in number_problems(POST.replace("13.38<!--", "13.39<!--"))
    )
    # a wrong row, a wrong field, a missing file and a pattern that is not there
    bad = "1<!-- fuente: guidance/results.json label=w=9 fid_domain -->"
    assert any("0 rows" in p for p in number_problems(bad))
    bad = "1<!-- fuente: guidance/results.json label=w=0 fid -->"
    assert any("no field" in p for p in number_problems(bad))
    assert number_problems("1<!-- fuente: none/results.json label=a fid -->")
    assert number_problems('1<!-- fuente: ddpm-fmnist-main-job/report.md "no such {} text" -->')
    # nested fields, lists and e-notation
    good = "2.29e-06<!-- fuente: step-by-step/results.json fact1.7.kl_half -->"
    assert number_problems(good) == []
    assert any("2.28e-06 is 2.29e-06" in p for p in number_problems(good.replace("29e", "28e")))
    assert number_problems(good.replace("fact1.7", "fact1.8"))
    good = '0.91<!-- fuente: step-by-step/results.json "memorisation.exact optimum, T = 5000.'
    assert number_problems(good + 'share_within_0.05" -->') == []
    assert number_problems(good + 'share_within_0.5" -->')
    assert number_problems(
        "| 12.5 | 3<!-- fuente: guidance/results.json label=w=0 fid_domain --> |"
    )


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_each_quoted_results_folder_is_linked_with_its_command(page):
    text = page.read_text()
    folders = sorted({source.split("/")[0] for _, source, _ in SOURCED.findall(text)})
    assert page.name != "ddpm.md" or len(folders) >= 5
    for folder in folders:
        assert f"../results/{folder}/" in text, f"{page.name} does not link docs/results/{folder}"
        readme = RESULTS / folder / "README.md"
        if readme.is_file():
            command = re.search(r"Reproduce: `([^`]+)`", readme.read_text())
            assert command, f"docs/results/{folder}/README.md names no command"
            assert f"`{command[1]}`" in text, f"{page.name} does not name `{command[1]}`"


def test_linked_figures_exist():
    for page in sorted(ES.glob("*.md")):
        for target in re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", page.read_text()):
            assert (page.parent / target).resolve().is_file(), f"{page.name}: no {target}"


# --------------------------------------------------------------------------------------------
# Code, twins and the glossary
# --------------------------------------------------------------------------------------------


def flat(code: str) -> str:
    """Lines without their indentation, so an excerpt from inside a function still matches."""
    return "\n".join(line.strip() for line in code.strip().splitlines())


SOURCES = [flat(p.read_text()) for p in (ROOT / "src" / "difusion").rglob("*.py")]


@pytest.mark.parametrize("page", sorted(ES.glob("*.md")), ids=lambda p: p.name)
def test_quoted_code_is_verbatim_in_the_sources(page):
    quotes = re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S)
    for quote in quotes:
        assert any(flat(quote) in s for s in SOURCES), f"{page.name}: not in src/:\n{quote[:400]}"


TWINS = {
    "ddpm.md": "docs/ddpm.md",
    "README.md": "docs/README.md",
    "paso-a-paso.md": "docs/step-by-step.md",
    "autoencoders.md": "docs/autoencoders.md",
    "unet.md": "docs/unet.md",
    "flujos.md": "docs/flow.md",
    "familias.md": "docs/generative-families.md",
}


@pytest.mark.parametrize("page", sorted(TWINS), ids=str)
def test_each_page_names_the_commit_of_its_english_twin(page):
    twin = TWINS[page]
    text = (ES / page).read_text()
    assert f"(../{Path(twin).name})" in text, f"docs/es/{page} does not link its twin {twin}"
    found = re.search(rf"commit `([0-9a-f]{{7,40}})` de `{re.escape(twin)}`", text)
    assert found, f"docs/es/{page} does not say which commit of {twin} it matches"
    git = shutil.which("git")
    if not git or not (ROOT / ".git").exists():
        pytest.skip("no git repository to look the commit up in")
    done = subprocess.run(
        [git, "log", "-1", "--format=%H", found[1], "--", twin],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0 and "unknown revision" in done.stderr:
        pytest.skip(f"commit {found[1]} is not in this clone (shallow?)")
    assert done.stdout.startswith(found[1]), f"{found[1]} is not a commit that changed {twin}"


def glossary() -> list[tuple[str, str]]:
    """(español, inglés) rows of the glossary's table."""
    rows = []
    for line in (ES / "glosario.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) >= 2 and not set(cells[0]) <= set("-: "):
            rows.append((cells[0], cells[1]))
    return rows[1:]  # without the header row


def test_the_glossary_has_the_pages_terms():
    terms = glossary()
    assert len(terms) >= 30
    text = " ".join(" ".join(p.read_text() for p in PAGES).lower().split())  # over line breaks
    unused = [es for es, _ in terms if es.lower() not in text]
    assert unused == [], f"glossary terms no Spanish page uses: {unused}"

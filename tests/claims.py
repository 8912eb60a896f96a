"""The claims registry: every measured number in README.md and docs/ traced to a results file.

A *claim* is a decimal number in a page's prose or tables (``30.4``, ``0.024``, ``2.29e-06``):
code blocks, inline code, math, links and HTML comments are not prose. A claim is *sourced* when

1. it is a section, equation or paper number (``Sec. 3.4``, ``arXiv 2406.08929``), or a number
   from the literature marked with its reference, ``3.17<!-- cite: Ho et al. 2020, Table 2 -->``;
2. it carries an explicit source right after it, ``13.38<!-- source: learning-curve/results.json
   label=10min fid_domain -->`` (``fuente:`` on the Spanish pages; the selector grammar is
   :func:`source_value`'s), and equals that value at the digits it shows; or
3. its section (from its ``#`` or ``##`` heading to the next one) names a results folder
   (``docs/results/NAME`` or ``results/NAME`` in a link, a command or the text) and a file in that
   folder holds the same number at the digits shown. This is weaker than an explicit source: it
   says the number is in the folder, not that it is the right row.

What is neither is *unsourced*. ``docs/claims-unsourced.txt`` lists the unsourced claims main still
has, page by page, so the list can only shrink: a new unsourced number fails the test, and so does
a listed one that has gone (remove it from the list). ``python -m tests.claims`` prints the
unsourced claims with their context; ``--prune`` unlists the ones that are gone (sourced or
removed); ``--write`` rewrites the whole list (only to start it: it would also list new debts).
"""

from __future__ import annotations

import json
import re
import shlex
import sys
from collections import Counter
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"
REGISTRY = ROOT / "docs" / "claims-unsourced.txt"

NUMBER = r"-?\d+(?:\.\d+)?(?:e-?\d+)?"
# an explicit source right after a number
SOURCED = re.compile(rf"(?<![\w.])({NUMBER})<!-- (?:source|fuente): (\S+) (.*?) -->")
# a claim: a decimal number not glued to a word, a path or a version (1.2.3)
CLAIM = re.compile(r"(?<![\w.$\\/@:-])-?\d+\.\d+(?:e-?\d+)?(?![\w]|\.\d)")
# a number from the literature, with its reference: 3.17<!-- cite: Ho et al. 2020, Table 2 -->
CITED = re.compile(rf"(?<![\w.])({NUMBER})<!-- (?:cite|cita): [^>]+ -->")
# a section, equation or paper number: "Sec. 3.4", "eq. 12.1", "arXiv 2406.08929"
REFERENCE = re.compile(
    r"(?:\b[Ss]ec(?:tion|ción|s)?\.?|\barXiv:?|\b[Ee]qs?\.|\b[Ee]quations?|\bTable|\bFig\.|"
    r"\bAlgorithm|\bPython\s*(?:≥|>=)?|§)\s*(?:[\d.]+,\s*)*$"
)
FOLDER = re.compile(r"results/([A-Za-z0-9][\w.-]*)")
TEXT_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?:e[-+]?\d+)?")


def pages() -> list[Path]:
    """README.md and every Markdown page under docs/ (English and Spanish), results READMEs aside."""
    found = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    return [p for p in found if RESULTS not in p.parents and "assets" not in p.parts]


def prose(md: str) -> str:
    """The page with everything that is not a claim blanked out (same length, so offsets hold):
    fenced code, math, inline code, link targets, HTML comments, front matter."""

    def blank(m: re.Match) -> str:
        return re.sub(r"[^\n]", " ", m[0])

    if md.startswith("---\n"):
        end = md.find("\n---", 4)
        md = blank(re.match(r"(?s).*", md[: end + 4])) + md[end + 4 :] if end > 0 else md
    for pattern, flags in (
        (r"^\s*(```|~~~).*?^\s*\1", re.S | re.M),
        (r"<!--.*?-->", re.S),
        (r"\$\$.*?\$\$", re.S),
        (r"(?<![\\$])\$[^$\n]+?\$", 0),
        (r"`[^`\n]+`", 0),
        (r"\]\([^)\s]*\)", 0),
        (r"<(?:img|a)\b[^>]*>", 0),
        (r"https?://\S+", 0),
    ):
        md = re.sub(pattern, blank, md, flags=flags)
    return md


# --------------------------------------------------------------------------------------------
# Sources
# --------------------------------------------------------------------------------------------


def source_value(source: str, selector: str) -> tuple[float | None, str]:
    """The number an explicit source points at, or (None, why not).

    ``FOLDER/results.json key=value ... field``: the one row (of a list, or the object itself)
    whose keys have those values, then the field; a field walks into nested objects and lists
    (``target_noise.1.x0``; a key that contains dots is matched as it is).
    ``FOLDER/FILE "text {} text"``: the number at ``{}`` where the pattern matches exactly once.
    """
    path = RESULTS / source
    if not path.is_file():
        return None, f"no file docs/results/{source}"
    tokens = shlex.split(selector)
    if path.suffix == ".json":
        if not tokens or any("=" not in t for t in tokens[:-1]):
            return None, f"say one field after the row's key=value: {selector!r}"
        keys = dict(t.split("=", 1) for t in tokens[:-1])
        rows = json.loads(path.read_text())
        rows = rows if isinstance(rows, list) else [rows]
        match = [r for r in rows if all(str(r.get(k)) == v for k, v in keys.items())]
        if len(match) != 1:
            return None, f"{len(match)} rows of {source} have {keys}"
        value, parts = match[0], tokens[-1].split(".")
        while parts:
            if isinstance(value, list) and parts[0].isdigit() and int(parts[0]) < len(value):
                value, parts = value[int(parts[0])], parts[1:]
                continue
            keys_here = value if isinstance(value, dict) else {}
            n = next((n for n in range(len(parts), 0, -1) if ".".join(parts[:n]) in keys_here), 0)
            if not n:
                return None, f"{source}: no field {tokens[-1]!r} in the row {keys}"
            value, parts = value[".".join(parts[:n])], parts[n:]
        return float(value), ""
    if len(tokens) != 1 or "{}" not in tokens[0]:
        return None, f"a text source takes one quoted pattern with {{}}: {selector!r}"
    pattern = re.escape(tokens[0]).replace(re.escape("{}"), f"({NUMBER})")
    found = re.findall(pattern, path.read_text())
    if len(found) != 1:
        return None, f"{source}: the pattern {tokens[0]!r} matches {len(found)} times"
    return float(found[0]), ""


def shown_as(value: float, shown: str) -> bool:
    """Does ``value`` print as ``shown`` at the digits ``shown`` has (``2.29e-06`` included)?"""
    mantissa, e, _ = shown.partition("e")
    digits = len(mantissa.split(".")[1]) if "." in mantissa else 0
    text = f"{value:.{digits}{'e' if e else 'f'}}"
    return text == shown or (text == "-" + shown.lstrip("-") and float(shown) == 0)


def text_shows(written: str, shown: str) -> bool:
    """Does a number written in a text file (a results README) show as ``shown``? As written, or
    rounded to fewer digits, unless the digits dropped are a lone 5: "46.45" was itself rounded
    (from 46.448), so it cannot say whether 46.4 or 46.5 is right."""
    if written == shown:
        return True
    if "e" in written or "e" in shown or "." not in written:
        return False
    digits = len(shown.split(".")[1]) if "." in shown else 0
    dropped = written.split(".")[1][digits:]
    if not dropped or dropped.rstrip("0") == "5":
        return False
    return shown_as(float(written), shown)


def _numbers(obj) -> list[float]:
    if isinstance(obj, bool):
        return []
    if isinstance(obj, int | float):
        return [float(obj)]
    if isinstance(obj, dict):
        return [v for x in obj.values() for v in _numbers(x)]
    if isinstance(obj, list):
        return [v for x in obj for v in _numbers(x)]
    if isinstance(obj, str):
        return [float(x) for x in TEXT_NUMBER.findall(obj)]
    return []


@cache
def folder_values(name: str) -> tuple[frozenset[float], frozenset[str]]:
    """The numbers in the files of docs/results/NAME: JSON values (a page may round them) and the
    numbers of its text files as written (a page must show them as written, so a number rounded
    twice, 46.448 -> "46.45" -> 46.5, does not pass)."""
    values: set[float] = set()
    texts: set[str] = set()
    folder = RESULTS / name
    if not folder.is_dir():
        return frozenset(), frozenset()
    for path in folder.rglob("*"):
        if path.suffix == ".json":
            values.update(_numbers(json.loads(path.read_text())))
        elif path.suffix in (".md", ".txt", ".yaml", ".csv", ".jsonl"):
            texts.update(t.lstrip("+") for t in TEXT_NUMBER.findall(path.read_text()))
    return frozenset(values), frozenset(texts)


def section_at(md: str, offset: int) -> str:
    """The section of the page around ``offset``: from the ``#`` or ``##`` heading before it to the
    next one (``#`` lines inside code blocks count too, which only makes sections shorter)."""
    starts = [m.start() for m in re.finditer(r"^#{1,2} ", md, flags=re.M)]
    begin = max((s for s in starts if s <= offset), default=0)
    end = min((s for s in starts if s > offset), default=len(md))
    return md[begin:end]


def named_folders(md: str) -> list[str]:
    """The results folders a page names (links, commands, text), existing ones only."""
    return sorted({m for m in FOLDER.findall(md) if (RESULTS / m).is_dir()})


# --------------------------------------------------------------------------------------------
# The check
# --------------------------------------------------------------------------------------------


def explicit_problems(md: str) -> list[str]:
    """Explicitly sourced numbers that differ from their source or whose source cannot be read."""
    problems = []
    for shown, source, selector in SOURCED.findall(md):
        value, why = source_value(source, selector)
        if value is None:
            problems.append(f"{shown} ({source} {selector}): {why}")
        elif not shown_as(value, shown):
            mantissa, e, _ = shown.partition("e")
            digits = len(mantissa.split(".")[1]) if "." in mantissa else 0
            expected = f"{value:.{digits}{'e' if e else 'f'}}"
            problems.append(f"{shown} is {expected} in {source} ({selector})")
    return problems


def unsourced(md: str) -> list[tuple[str, str]]:
    """(number, the words around it) for every claim of a page that has no source."""
    explicit = {m.start(1) for m in SOURCED.finditer(md)} | {m.start(1) for m in CITED.finditer(md)}
    text = prose(md)
    out = []
    for m in CLAIM.finditer(text):
        if m.start() in explicit:
            continue
        shown = m[0]
        if REFERENCE.search(text[max(0, m.start() - 24) : m.start()]):
            continue
        found = [folder_values(name) for name in named_folders(section_at(md, m.start()))]
        if any(text_shows(t, shown) for _, texts in found for t in texts):
            continue
        if any(shown_as(v, shown) for values, _ in found for v in values):
            continue
        line_start = text.rfind("\n", 0, m.start()) + 1
        line_end = text.find("\n", m.end())
        line = md[line_start : line_end if line_end >= 0 else None]
        col = m.start() - line_start
        context = " ".join(line[max(0, col - 40) : col + 30].split())
        out.append((shown, context))
    return out


def registry() -> dict[str, Counter]:
    """The listed unsourced claims: page -> Counter of numbers."""
    listed: dict[str, Counter] = {}
    if not REGISTRY.is_file():
        return listed
    for line in REGISTRY.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        page, shown = line.split("\t")[:2]
        listed.setdefault(page, Counter())[shown] += 1
    return listed


def current() -> dict[str, list[tuple[str, str]]]:
    """page (relative to the project) -> its unsourced claims."""
    return {str(p.relative_to(ROOT)): unsourced(p.read_text()) for p in pages()}


def registry_problems(
    found: dict[str, list[tuple[str, str]]], listed: dict[str, Counter]
) -> list[str]:
    """Claims that are unsourced and not listed, and listed claims that are no longer there."""
    problems = []
    for page in sorted(set(found) | set(listed)):
        have = Counter(shown for shown, _ in found.get(page, []))
        allowed = listed.get(page, Counter())
        for shown, context in found.get(page, []):
            if have[shown] > allowed[shown]:
                problems.append(f"{page}: {shown} has no source: ...{context}...")
                have[shown] -= 1
        for shown, n in (allowed - Counter(s for s, _ in found.get(page, []))).items():
            problems.append(
                f"{page}: {shown} is listed in {REGISTRY.name} x{n} but gone: unlist it"
            )
    return problems


def write_registry(found: dict[str, list[tuple[str, str]]]) -> None:
    lines = [
        "# Unsourced claims: numbers in README.md and docs/ with no results file behind them.",
        "# This list may only shrink (tests/test_claims.py). page<TAB>number<TAB>context",
    ]
    for page, claims in found.items():
        lines += [f"{page}\t{shown}\t{context}" for shown, context in claims]
    REGISTRY.write_text("\n".join(lines) + "\n")


def prune_registry(found: dict[str, list[tuple[str, str]]]) -> int:
    """Drop the listed claims that are gone from their pages (never add one); how many went."""
    have = {page: Counter(shown for shown, _ in items) for page, items in found.items()}
    kept, dropped = [], 0
    for line in REGISTRY.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            page, shown = line.split("\t")[:2]
            if have.get(page, Counter())[shown] <= 0:
                dropped += 1
                continue
            have[page][shown] -= 1
        kept.append(line)
    REGISTRY.write_text("\n".join(kept) + "\n")
    return dropped


def main(argv: list[str]) -> None:
    found = current()
    if "--write" in argv:
        write_registry(found)
    if "--prune" in argv:
        print(f"{prune_registry(found)} paid claims unlisted")
    total = sum(len(v) for v in found.values())
    claims = sum(len(CLAIM.findall(prose(p.read_text()))) for p in pages())
    for page, items in found.items():
        if items and "--quiet" not in argv:
            print(f"\n{page}: {len(items)} unsourced")
            for shown, context in items:
                print(f"  {shown:>10}  {context}")
    print(f"\n{total} of {claims} claims unsourced in {len(found)} pages")


if __name__ == "__main__":
    main(sys.argv[1:])

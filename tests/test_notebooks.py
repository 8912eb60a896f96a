"""The teaching material runs: the notebooks and the docs' Python examples are executed, not only read.

- Every notebook in notebooks/en/ (jupytext percent files: plain Python with ``# %%`` cells) is
  converted to a notebook in memory and executed by nbclient in a fresh kernel at the tiny budget
  (``DIFUSION_NOTEBOOK_BUDGET=tiny``, one thread), in a temporary folder; an error in any cell,
  including a failed ``assert`` on the notebook's own closed-form checks, fails the test, and each
  notebook must draw at least one figure.
- notebooks/es/ holds the same notebooks with Spanish prose: the code cells are identical, cell for
  cell, and every markdown cell is translated. The Spanish files are executed too (``-m slow``):
  their code is the English files' code, checked here, so the default tier runs it once.
- Every Python block of README.md and docs/*.md that tests/test_docs.py does not hold against src/
  (those that begin with ``from difusion`` or ``import``: examples, not quotes) is listed below as
  run or not run, with the reason. A run example is executed as written, in a temporary folder,
  after an optional prelude (what the page assumes the reader already has) and with any declared
  substitution; its comments then become checks: ``print(...)  # 0.0575`` must print that number at
  the digits shown, ``print(...)  # (4, 7, 7)`` that text, and ``# samples.x: (16, 1, 8, 8)`` is
  the shape of ``samples.x``.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import jupytext
import pytest
import torch
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
EN = sorted((NOTEBOOKS / "en").glob("[0-9][0-9]_*.py"))
ES = sorted((NOTEBOOKS / "es").glob("[0-9][0-9]_*.py"))
BUDGET_VARIABLE = "DIFUSION_NOTEBOOK_BUDGET"


# --------------------------------------------------------------------------------------------
# The notebooks
# --------------------------------------------------------------------------------------------


def cells(path: Path, kind: str) -> list[str]:
    """The sources of the ``kind`` cells (code or markdown) of a jupytext file, in order."""
    return [c.source for c in jupytext.read(path).cells if c.cell_type == kind]


def twin_problems(en: Path | str, es: Path | str) -> list[str]:
    """What keeps ``es`` from being ``en`` with its prose translated: a code cell that differs, a
    different number of cells, a markdown cell left in English."""
    read = (lambda p, k: cells(p, k)) if isinstance(en, Path) else _cells_of_text
    problems = []
    code_en, code_es = read(en, "code"), read(es, "code")
    if len(code_en) != len(code_es):
        problems.append(f"{len(code_en)} code cells in English, {len(code_es)} in Spanish")
    for i, (a, b) in enumerate(zip(code_en, code_es, strict=False)):
        if a != b:
            problems.append(f"code cell {i + 1} differs")
    md_en, md_es = read(en, "markdown"), read(es, "markdown")
    if len(md_en) != len(md_es):
        problems.append(f"{len(md_en)} markdown cells in English, {len(md_es)} in Spanish")
    for i, (a, b) in enumerate(zip(md_en, md_es, strict=False)):
        if a == b:
            problems.append(f"markdown cell {i + 1} is not translated")
    return problems


def _cells_of_text(text: str, kind: str) -> list[str]:
    return [c.source for c in jupytext.reads(text, fmt="py:percent").cells if c.cell_type == kind]


def test_every_notebook_has_a_spanish_twin():
    assert len(EN) >= 5
    assert [p.name[:2] for p in ES] == [p.name[:2] for p in EN]


@pytest.mark.parametrize("en,es", list(zip(EN, ES, strict=True)), ids=lambda p: p.name)
def test_the_spanish_notebook_has_the_english_code(en, es):
    assert twin_problems(en, es) == []


def test_the_twin_check_can_fail():
    en, es = EN[1].read_text(), ES[1].read_text()
    assert twin_problems(en, es) == []
    changed = es.replace("TRAIN_STEPS = 60", "TRAIN_STEPS = 6")
    assert twin_problems(en, changed) == ["code cell 1 differs"]
    assert twin_problems(en, _swap_first_markdown(en, es)) == ["markdown cell 1 is not translated"]


def _swap_first_markdown(en: str, es: str) -> str:
    """``es`` with its first markdown cell replaced by ``en``'s (a cell left in English)."""
    head = re.compile(r"# %% \[markdown\]\n(?:#.*\n)+")
    return head.sub(lambda _: head.search(en)[0], es, count=1)


@pytest.mark.parametrize("path", EN + ES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_each_notebook_says_its_budget_first(path):
    first = cells(path, "markdown")[0]
    assert BUDGET_VARIABLE in first and "tiny" in first and "student" in first
    assert f'os.environ.get("{BUDGET_VARIABLE}", "student")' in cells(path, "code")[0]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """One folder for the notebooks of a language, in order: notebook 3 samples notebook 2's run."""
    return tmp_path_factory.mktemp("notebooks")


def execute(path: Path, cwd: Path, timeout: int = 120):
    """Run every cell of the notebook ``path`` in a fresh kernel in ``cwd`` at the tiny budget."""
    nb = jupytext.read(path)
    env = {**os.environ, BUDGET_VARIABLE: "tiny", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    env.pop("MPLBACKEND", None)  # the kernel's inline backend, so figures become outputs
    client = NotebookClient(
        nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}
    )
    client.execute(env=env)
    return nb


def figures(nb) -> int:
    return sum(
        "image/png" in out.get("data", {})
        for c in nb.cells
        if c.cell_type == "code"
        for out in c.get("outputs", [])
    )


@pytest.mark.parametrize("path", EN, ids=lambda p: p.name)
def test_the_notebook_runs_at_the_tiny_budget(path, workdir):
    nb = execute(path, workdir)
    assert figures(nb) >= 1, f"{path.name} drew no figure"


@pytest.mark.slow
@pytest.mark.parametrize("path", ES, ids=lambda p: p.name)
def test_the_spanish_notebook_runs_at_the_tiny_budget(path, tmp_path_factory):
    cwd = tmp_path_factory.getbasetemp() / "cuadernos"
    cwd.mkdir(exist_ok=True)
    nb = execute(path, cwd)
    assert figures(nb) >= 1, f"{path.name} drew no figure"


def test_a_failing_cell_fails_the_notebook(tmp_path):
    from nbclient.exceptions import CellExecutionError

    broken = tmp_path / "broken.py"
    broken.write_text("# %%\nx = 1\n\n# %%\nassert x == 2, 'the closed form does not hold'\n")
    with pytest.raises(CellExecutionError, match="the closed form does not hold"):
        execute(broken, tmp_path)


# --------------------------------------------------------------------------------------------
# The docs' Python examples
# --------------------------------------------------------------------------------------------

BLOCK = re.compile(r"```python\n(.*?)```", re.S)
EXAMPLE_START = ("from difusion", "import ")  # tests/test_docs.py holds every other block to src/


def examples() -> dict[tuple[str, str], str]:
    """(page, first line) -> code of every example block of README.md and docs/*.md; a first line
    that opens another block of the same page before it gets " (2)", " (3)", ..."""
    found = {}
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for code in BLOCK.findall(page.read_text()):
            if code.lstrip().startswith(EXAMPLE_START):
                first = code.strip().splitlines()[0]
                key, n = (str(page.relative_to(ROOT)), first), 1
                while key in found:
                    n += 1
                    key = (key[0], f"{first} ({n})")
                found[key] = code
    return found


@dataclass
class Run:
    """How to run an example: ``prelude`` makes what the page assumes (a run folder, ``x``);
    ``substitute`` maps text of the example to what runs instead (declared, with its reason);
    ``needs`` is a data set that must be installed (else the test skips, saying so)."""

    prelude: str = ""
    substitute: dict[str, str] = field(default_factory=dict)
    why_substitute: str = ""
    needs: str | None = None


RUN = {
    ("README.md", "from difusion.config import load_config"): Run(
        substitute={
            '["train.steps=500"]': '["train.steps=20", "train.threads=1", "sample.n=4", '
            '"sample.steps=20"]'
        },
        why_substitute="20 training steps on one thread, and 20 sampling steps for the run's own "
        "samples (the 4 at the end of training, then `run.settings`' 16), in place of 500 and the "
        "preset's 1000: the same calls in seconds",
    ),
    ("docs/autoencoders.md", "from difusion.autoencoders.measures import PCA, mse_per_image"): Run(
        needs="fashion-mnist"
    ),
    ("docs/autoencoders.md", "from difusion.autoencoders import load_autoencoder"): Run(
        prelude=(
            "from difusion.config import load_config\n"
            "from difusion.data import load_dataset\n"
            "from difusion.training.loop import train\n"
            # the page's first stage is a 10-minute ldm-fmnist run; 2 steps give the same shapes
            'train(load_config("vae-fmnist-spatial", ["train.steps=2", "train.threads=1"]),'
            ' "runs/ldm-first-stage",'
            " progress=False, final_samples=False)\n"
            'x = load_dataset("fashion-mnist", split="test").data[:4]\n'
        ),
        needs="fashion-mnist",
    ),
}

NOT_RUN = {
    ("docs/diffusers.md", "import difusion.hub.model  # lets diffusers build the lab's network"): (
        "needs a trained run exported with `difusion export`; tests/test_diffusers_export.py "
        "exports a tiny run and loads and samples it with DiffusionPipeline the same way"
    ),
    ("docs/diffusers.md", "import torch"): (
        "continues the block above (`pipe`); tests/test_diffusers_export.py samples an export "
        "with per-image generators the same way"
    ),
    ("docs/diffusers.md", "import torch (2)"): (
        "continues the blocks above (`pipe`, `generators`); tests/test_diffusers_export.py steps "
        "an exported model's scheduler by hand the same way"
    ),
    ("docs/metrics-inception.md", "from difusion.metrics.inception import InceptionFeatures"): (
        "needs the Inception weights (`difusion fetch inception`, about 100 MB) and `images`; "
        "tests/test_inception.py runs InceptionFeatures on images when the weights are there"
    ),
}


def test_every_example_is_run_or_says_why_not():
    found = set(examples())
    listed = set(RUN) | set(NOT_RUN)
    assert not set(RUN) & set(NOT_RUN)
    assert found - listed == set(), "examples in the docs that this file neither runs nor excuses"
    assert listed - found == set(), "listed examples that are no longer in the docs"


SHAPE_COMMENT = re.compile(r"#\s*([A-Za-z_][\w.]*): (\([\d, ]+\))")
PRINT_COMMENT = re.compile(r"^\s*print\(.*\)\s*#\s*(.+?)\s*$")
DECIMAL = re.compile(r"-?\d+\.\d+")


def comment_problems(code: str, printed: str, namespace: dict) -> list[str]:
    """The example's comments against what it did: ``# NAME: (shape)`` and ``print(...)  # VALUE``
    (a decimal compared at the digits shown, anything else as text), prints in order."""
    problems = []
    for name, shape in SHAPE_COMMENT.findall(code):
        obj = namespace
        for i, part in enumerate(name.split(".")):
            obj = obj[part] if i == 0 else getattr(obj, part)
        if str(tuple(obj.shape)) != shape:
            problems.append(f"{name} has shape {tuple(obj.shape)}, the comment says {shape}")
    expected = [m[1] for m in map(PRINT_COMMENT.match, code.splitlines()) if m]
    lines = printed.strip().splitlines()
    if expected and len(lines) != len(expected):
        problems.append(f"{len(lines)} printed lines for {len(expected)} commented prints")
    for want, got in zip(expected, lines, strict=False):
        got = re.sub(r"^tensor\((.*)\)$", r"\1", got.strip())  # print(a_tensor)
        if DECIMAL.fullmatch(want):
            digits = len(want.split(".")[1])
            if f"{float(got):.{digits}f}" != want:
                problems.append(f"printed {got}, the comment says {want}")
        elif got.strip() != want:
            problems.append(f"printed {got.strip()}, the comment says {want}")
    return problems


def test_the_comment_check_can_fail():
    ns = {"samples": type("S", (), {"x": torch.zeros(16, 1, 8, 8)})()}
    assert comment_problems("y = 1  # samples.x: (16, 1, 8, 8)", "", ns) == []
    assert comment_problems("y = 1  # samples.x: (16, 1, 8, 9)", "", ns)
    assert comment_problems("print(a)  # 0.0575", "0.05751\n", {}) == []
    assert comment_problems("print(a)  # 0.0575", "0.0577\n", {})
    assert comment_problems("print(a)  # 0.0575", "tensor(0.0575)\n", {}) == []
    assert comment_problems("print(a)  # (4, 7, 7)", "(4, 7, 7)\n", {}) == []
    assert comment_problems("print(a)  # (4, 7, 7)", "(4, 7, 8)\n", {})


def dataset_available(name: str) -> bool:
    from difusion.data import describe_datasets

    return any(d["name"] == name and d["available"] for d in describe_datasets())


@pytest.mark.parametrize("key", sorted(RUN), ids=lambda k: f"{k[0]}:{k[1][:40]}")
def test_the_example_runs_as_written(key, tmp_path, monkeypatch):
    how = RUN[key]
    if how.needs and not dataset_available(how.needs):
        pytest.skip(f"{how.needs} is not installed (scripts/setup.sh installs it)")
    code = examples()[key]
    for old, new in how.substitute.items():
        assert old in code, f"the declared substitution {old!r} is no longer in the example"
        code = code.replace(old, new)
    monkeypatch.chdir(tmp_path)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    namespace: dict = {"__name__": "__example__"}
    try:
        exec(compile(how.prelude, f"{key[0]} (prelude)", "exec"), namespace)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(code, key[0], "exec"), namespace)
    finally:
        torch.set_num_threads(threads)
    assert comment_problems(code, out.getvalue(), namespace) == []

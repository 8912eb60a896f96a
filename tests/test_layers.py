"""The package's layers import only downward: import-linter's contracts (``[tool.importlinter]`` in
pyproject.toml) hold on the real package, and break when a lower layer imports a higher one."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "difusion"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(src: Path) -> subprocess.CompletedProcess:
    """``lint-imports`` with the project's contracts on the package found in ``src``."""
    assert LINT_IMPORTS.exists(), f"{LINT_IMPORTS} missing: pip install -e '.[test]'"
    env = {**os.environ, "PYTHONPATH": str(src)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
        cwd=src,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def package_copy(tmp_path):
    """A copy of src/difusion to break; lint-imports reads it through PYTHONPATH."""
    shutil.copytree(PACKAGE, tmp_path / "difusion", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def test_the_package_keeps_its_layers():
    result = lint_imports(ROOT / "src")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_an_upward_import_breaks_the_layers(package_copy):
    path = package_copy / "difusion" / "diffusion" / "path.py"
    path.write_text(path.read_text() + "\nimport difusion.training.loop  # noqa: E402\n")
    result = lint_imports(package_copy)
    assert result.returncode != 0
    assert "Layers" in result.stdout and "BROKEN" in result.stdout
    assert "difusion.diffusion.path -> difusion.training.loop" in result.stdout


def test_data_importing_a_network_breaks_its_contracts(package_copy):
    # A lazy import counts as much as one at the top of the module.
    path = package_copy / "difusion" / "data" / "base.py"
    path.write_text(path.read_text() + "\n\ndef _net():\n    import difusion.nn.unet  # noqa\n")
    result = lint_imports(package_copy)
    assert result.returncode != 0
    assert "Data never imports a model" in result.stdout
    assert "difusion.data.base -> difusion.nn.unet" in result.stdout


def test_the_config_checks_every_objective_the_loop_trains():
    """The config (below training) checks each objective's section; the training registry imports
    the objective's module by name. Both must know the same objectives."""
    from difusion.config import OBJECTIVE_CHECKS
    from difusion.training.objectives import _MODULES

    assert set(OBJECTIVE_CHECKS) == set(_MODULES)

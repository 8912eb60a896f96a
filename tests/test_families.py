"""`difusion experiment families`: one likelihood table on the 8x8 digits for every family."""

from __future__ import annotations

import json
import math

import pytest

from difusion.experiments import run_named
from difusion.experiments.families import families


def table(page):
    return {r["label"]: r for r in json.loads((page.parent / "results.json").read_text())}


def test_the_one_pass_families_learn_and_keep_their_units(tmp_path):
    """200 steps each: the flows and a VAE beat the uniform model's exact log2 17 bits/dim (an
    untrained flow sits at or above it: its first logged loss is about 4.9), the uniform row is
    exact, an IWAE bound is at most its -ELBO, and every row's grid is written beside the page."""
    only = ("RealNVP", "IDF", "two-layer VAE")
    page = families("small", tmp_path / "runs", tmp_path / "results", False, only=only)
    rows = table(page)
    assert set(rows) == {"uniform", *only}
    assert rows["uniform"]["bits_per_dim"] == math.log2(17)
    assert rows["RealNVP"]["bits_per_dim"] < math.log2(17) - 0.5
    assert rows["IDF"]["bits_per_dim"] < math.log2(17) - 0.1
    assert rows["IDF"]["bound"] == "exact" and rows["RealNVP"]["bound"] == "upper bound"
    r = rows["two-layer VAE"]  # an IWAE bound: at most the -ELBO of the same draws, and it learned
    assert r["bits_per_dim"] <= r["elbo_bits_per_dim"] < math.log2(17)
    for label in ("RealNVP", "IDF", "two-layer VAE"):
        assert rows[label]["test_n"] == 297
        assert (page.parent / rows[label]["grid"]).is_file()
    assert "| uniform | baseline | 4.087 | exact |" in page.read_text()


@pytest.mark.slow
def test_the_whole_small_table(tmp_path):
    """Every row at the small budget (about 2 minutes): the DDPM's bound and the flow's ODE
    estimate are finite bits/dim on 32 test images, and every row has its grid."""
    page = run_named("families", "small", tmp_path / "runs", tmp_path / "results", False)
    rows = table(page)
    assert len(rows) == 8
    for label in ("DDPM", "flow matching"):
        assert rows[label]["test_n"] == 32 and 0 < rows[label]["bits_per_dim"] < 10
    assert rows["flow matching"]["ode_steps"] == [5, 10]
    assert all((page.parent / r["grid"]).is_file() for r in rows.values() if "grid" in r)

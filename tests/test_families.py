"""`difusion experiment families`: one likelihood table on the 8x8 digits for every family."""

from __future__ import annotations

import json
import math

from difusion.experiments import run_named


def test_small_families_table_learns_and_keeps_its_units(tmp_path):
    """200 steps each: every trained row beats the uniform model's exact log2 17 bits/dim (an
    untrained flow sits at or above it: its first logged loss is about 4.9), the uniform row is
    exact, and every row's grid is written beside the page."""
    page = run_named("families", "small", tmp_path / "runs", tmp_path / "results", False)
    rows = {r["label"]: r for r in json.loads((page.parent / "results.json").read_text())}
    assert rows["uniform"]["bits_per_dim"] == math.log2(17)
    assert rows["RealNVP"]["bits_per_dim"] < math.log2(17) - 0.5
    assert rows["IDF"]["bits_per_dim"] < math.log2(17) - 0.1
    assert rows["IDF"]["bound"] == "exact" and rows["RealNVP"]["bound"] == "upper bound"
    for label in ("RealNVP", "IDF"):
        assert rows[label]["test_n"] == 297
        assert (page.parent / rows[label]["grid"]).is_file()
    assert "| uniform | baseline | 4.087 | exact |" in page.read_text()

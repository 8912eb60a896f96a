"""The experiment runner: trains, evaluates, writes a results page, and reuses finished runs."""

import json

import pytest

from difusion.data import describe_datasets
from difusion.errors import DifusionError
from difusion.experiments import get_experiment, run_experiment

fashion = any(d["name"] == "fashion-mnist" and d["available"] for d in describe_datasets())


@pytest.mark.skipif(not fashion, reason="Fashion-MNIST is not installed")
def test_small_learning_curve_runs_and_reuses(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    exp = get_experiment("learning-curve", "small")
    page = run_experiment(exp, tmp_path / "runs", tmp_path / "results", progress=False)
    text = page.read_text()
    assert "| 0.1min | 0.1 |" in text and "fid_domain" in text
    assert (page.parent / "metrics.png").exists()
    rows = json.loads((page.parent / "results.json").read_text())
    assert [r["state"] for r in rows] == ["trained", "trained"]
    assert all(r["fid_domain"] > 0 for r in rows)
    # A second call reuses the finished runs and their evaluations.
    run_experiment(exp, tmp_path / "runs", tmp_path / "results", progress=False)
    rows2 = json.loads((page.parent / "results.json").read_text())
    assert [r["state"] for r in rows2] == ["reused", "reused"]
    assert rows2[0]["fid_domain"] == rows[0]["fid_domain"]


def test_unknown_experiment_or_budget():
    with pytest.raises(DifusionError, match="learning-curve"):
        get_experiment("nope", "small")
    with pytest.raises(DifusionError, match="small or full"):
        get_experiment("learning-curve", "huge")


@pytest.mark.skipif(not fashion, reason="Fashion-MNIST is not installed")
def test_sampler_table_trains_once_and_pivots(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    exp = get_experiment("sampler-table", "small")
    page = run_experiment(exp, tmp_path / "runs", tmp_path / "results", progress=False)
    rows = json.loads((page.parent / "results.json").read_text())
    # Every row samples the same model: it is trained by the first row and reused by the rest.
    assert [r["state"] for r in rows] == ["trained"] + ["reused"] * (len(rows) - 1)
    assert len({r["run"] for r in rows}) == 1
    text = page.read_text()
    for group in ("ddim eta=0", "ddim eta=1", "ddpm sigma-hat", "dpmpp-2m", "heun"):
        assert f"| {group} |" in text  # one pivot line per sampler
    # The pivot cell is the row's own number.
    r = next(r for r in rows if r["group"] == "dpmpp-2m" and r["x"] == 10)
    assert f"{r['fid_domain']:.2f} |" in text.split("All rows")[0]
    # Heun at 10 network evaluations takes 5 steps; every draw is stored with its sampler's name.
    heun = next(r for r in rows if r["group"] == "heun" and r["x"] == 10)
    assert heun["steps"] == 5 and heun["sampler"] == "heun"


@pytest.mark.slow
def test_improved_sigma_experiment_small(tmp_path):
    """One L_hybrid run, scored with its learned Sigma and both fixed ones; the page has FID and
    the bound in bits/dim, and the fixed variances of a learned-Sigma model are refused nowhere."""
    from difusion.experiments.runner import run_named

    page = run_named("improved-sigma", "small", tmp_path / "runs", tmp_path / "results", False)
    text = page.read_text()
    assert "learned S=5" in text and "beta_tilde S=10" in text
    rows = json.loads((page.parent / "results.json").read_text())
    assert len(rows) == 6 and all(r["fid_domain"] > 0 for r in rows)
    assert len({r["run"] for r in rows}) == 1  # one model, six ways of sampling it

"""The experiment runner: trains, evaluates, writes a results page, and reuses finished runs."""

import json

import pytest
from test_cli import TINY

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


TINY_DIGITS = [*TINY, "train.steps=15", "train.minutes=null"]  # the CLI tests' tiny network


def _two_run_experiment():
    from difusion.experiments.runner import EvalSpec, Experiment, RunSpec

    rows = [
        RunSpec("lr 1e-3", "digits", [*TINY_DIGITS, "train.lr=1e-3"]),
        RunSpec("lr 3e-3", "digits", [*TINY_DIGITS, "train.lr=3e-3"]),
    ]
    ev = EvalSpec(n=16, steps=5, metrics=("fid",), n_reference=100)
    return Experiment("side", "two runs", "", rows, ev)


def test_runs_trained_side_by_side_score_as_one_at_a_time(tmp_path, monkeypatch):
    """--jobs 2 trains both runs in their own processes first; the numbers are those of training
    them one after the other (same seeds, deterministic CPU training)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    exp = _two_run_experiment()
    one = run_experiment(exp, tmp_path / "a", tmp_path / "ra", progress=False)
    two = run_experiment(exp, tmp_path / "b", tmp_path / "rb", progress=False, jobs=2)
    rows1 = json.loads((one.parent / "results.json").read_text())
    rows2 = json.loads((two.parent / "results.json").read_text())
    assert [r["state"] for r in rows1] == ["trained", "trained"]
    assert [r["state"] for r in rows2] == ["reused", "reused"]  # the pool trained them
    assert [r["fid_domain"] for r in rows1] == pytest.approx([r["fid_domain"] for r in rows2])
    assert rows1[0]["fid_domain"] != rows1[1]["fid_domain"]  # two different models


def test_a_shared_run_is_trained_once_when_two_experiments_race(tmp_path):
    """Two threads asking for the same run: the lock makes one train it and the other reuse it."""
    from concurrent.futures import ThreadPoolExecutor

    from difusion.experiments.runner import train_or_resume

    run = tmp_path / "runs" / "shared"
    with ThreadPoolExecutor(2) as pool:
        states = sorted(
            pool.map(lambda _: train_or_resume("digits", TINY_DIGITS, run, False), range(2))
        )
    assert states == ["reused", "trained"]

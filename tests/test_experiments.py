"""The experiment harness: one rule for a finished run, training unless finished, scoring once,
the results page from the rows; and the recipes run end to end on tiny runs."""

import json

import pytest
from test_cli import TINY

from difusion.config import load_config, save_config
from difusion.data import describe_datasets
from difusion.errors import DifusionError
from difusion.experiments import experiment_names, get_experiment, run_experiment
from difusion.experiments.spec import EvalSpec, Experiment, RunSpec
from difusion.experiments.training import finished, train_run

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

    run = tmp_path / "runs" / "shared"
    with ThreadPoolExecutor(2) as pool:
        states = sorted(pool.map(lambda _: train_run("digits", TINY_DIGITS, run, False), range(2)))
    assert states == ["reused", "trained"]


def _run_folder(path, preset="digits", overrides=TINY_DIGITS, files=()):
    """A run folder by hand: its config.yaml and the named (empty) files, no training."""
    path.mkdir(parents=True)
    save_config(load_config(preset, overrides), path / "config.yaml")
    for name in files:
        (path / name).write_text("")
    return path


def test_one_rule_for_finished(tmp_path):
    """Finished = the report and the objective's last output are there: samples.npz for a diffusion
    (or flow) run, measures.json for an autoencoder. A report alone is what Ctrl-C leaves."""
    assert not finished(tmp_path / "missing")
    assert not finished(_run_folder(tmp_path / "config-only"))
    stopped = ["checkpoint.safetensors", "report.md"]
    assert not finished(_run_folder(tmp_path / "stopped", files=stopped))
    assert finished(_run_folder(tmp_path / "done", files=[*stopped, "samples.npz"]))
    assert not finished(_run_folder(tmp_path / "no-report", files=["samples.npz"]))
    ae = ["autoencoder.eval_n=10"]
    assert not finished(_run_folder(tmp_path / "ae", "vae-fmnist", ae, [*stopped, "samples.npz"]))
    assert finished(
        _run_folder(tmp_path / "ae-done", "vae-fmnist", ae, ["report.md", "measures.json"])
    )


def _record_training(monkeypatch):
    """Replace the training loop by a recorder: (cfg given?, resume) per call."""
    import difusion.training.loop as loop

    calls = []
    monkeypatch.setattr(loop, "train", lambda cfg, run_dir, resume=False, **kw: calls.append(
        (cfg is not None, resume)))  # fmt: skip
    return calls


def test_a_finished_run_is_reused_without_training(tmp_path, monkeypatch):
    calls = _record_training(monkeypatch)
    done = _run_folder(tmp_path / "done", files=["report.md", "samples.npz"])
    assert train_run("digits", TINY_DIGITS, done, progress=False) == "reused"
    assert calls == []


def test_a_stopped_run_is_resumed_and_an_unfinished_one_is_an_error(tmp_path, monkeypatch):
    """A checkpoint: resume from it (the stored config); still no final output afterwards (stopped
    again): a one-line error that says to run the experiment again."""
    calls = _record_training(monkeypatch)
    stopped = _run_folder(tmp_path / "stopped", files=["checkpoint.safetensors", "report.md"])
    with pytest.raises(DifusionError, match="stopped before its end"):
        train_run("digits", TINY_DIGITS, stopped, progress=False)
    assert calls == [(False, True)]


def test_a_folder_with_a_config_but_no_checkpoint_is_trained(tmp_path):
    run = _run_folder(tmp_path / "config-only")
    assert train_run("digits", TINY_DIGITS, run, progress=False) == "trained"
    assert finished(run) and (run / "checkpoint.safetensors").exists()
    assert train_run("digits", TINY_DIGITS, run, progress=False) == "reused"


def test_the_page_is_written_from_the_rows(tmp_path):
    """write_results: results.json is the rows; the page has a pivot table per headline metric
    (a line per group, x across), every row, what was measured, the plot and the notes."""
    from difusion.experiments.page import write_results

    setup = {"features": "domain", "n_samples": 8, "n_reference": 100, "reference": "x:test"}
    rows = [
        {"label": f"{g} S={x}", "x": x, "group": g, "run": "r", "state": "reused",
         "sampler": g, "steps": x, "sampling_s": 1.5, "fid_domain": fid,
         "kid_domain": 0.01, "kid_domain_std": 0.001, "setup_domain": setup,
         "train_report": "- steps: 15", "seconds": 2.0}
        for g, x, fid in (("ddim", 5, 30.0), ("ddim", 10, 20.0), ("heun", 10, 25.0))
    ]  # fmt: skip
    exp = Experiment("demo", "A demo", "Three rows.", [RunSpec("a", "digits")] * 4, EvalSpec(),
                     x_label="steps", command="difusion experiment demo", notes="Read me.")  # fmt: skip
    page = write_results(exp, rows, tmp_path / "demo", done=False)
    assert json.loads((page.parent / "results.json").read_text()) == rows
    text = page.read_text()
    assert text.startswith("# A demo\n\nThree rows.\n\nReproduce: `difusion experiment demo`")
    assert "**In progress: 3 of 4 rows so far.**" in text
    pivot, table = text.split("All rows:")
    assert "**fid_domain** (steps across):" in pivot and "kid" not in pivot
    assert "| | 5 | 10 |" in pivot and "| ddim | 30.00 | 20.00 |" in pivot
    assert "| heun |  | 25.00 |" in pivot
    assert "| run | steps | sampler | fid_domain | kid_domain | sampling s | training |" in table
    assert "| heun S=10 | 10 | heun | 25.000 | 0.010 | 1.5 | - steps: 15 |" in table
    assert "- domain: domain, 8 samples against 100 images of x:test" in table
    assert "![metrics against steps](metrics.png)" in text and text.endswith("Read me.\n")
    assert (page.parent / "metrics.png").exists()
    assert "In progress" not in write_results(exp, rows, tmp_path / "demo").read_text()


def test_scores_are_computed_once_per_folder(tmp_path, monkeypatch):
    """score_images caches each feature network's evaluation beside the samples; precision and
    recall are named after the features."""
    import difusion.evaluation as evaluation
    from difusion.evaluation import EvalResult
    from difusion.experiments.scoring import score_images

    calls = []

    def fake(images, labels, *, features, **kw):
        calls.append(features)
        return EvalResult(metrics={f"fid_{features}": 3.0, "precision": 0.5},
                          setup={"features": features})  # fmt: skip

    monkeypatch.setattr(evaluation, "evaluate", fake)
    kw = dict(features=("domain", "inception"), metrics=("fid", "pr"), progress=False)
    first = score_images(None, None, tmp_path, **kw)
    again = score_images(None, None, tmp_path, **kw)
    assert calls == ["domain", "inception"] and first == again
    assert first["precision_domain"] == 0.5 and first["fid_inception"] == 3.0
    assert first["setup_inception"] == {"features": "inception"}
    # scores against the validation split are cached apart from the test scores
    val = score_images(None, None, tmp_path, reference="fashion-mnist:val", **kw)
    assert calls == ["domain", "inception"] * 2 and val == first
    assert (tmp_path / "eval-domain-val.json").is_file() and (
        tmp_path / "eval-domain.json"
    ).is_file()


def test_every_experiment_name_resolves():
    """Each chapter's recipes build at the small budget; the others are runner functions."""
    from difusion.experiments.runner import _registry

    recipes, custom = _registry()
    assert set(experiment_names()) == set(recipes) | set(custom)
    assert not set(recipes) & set(custom)
    for name in ("learning-curve", "sampler-table", "guidance", "improved-losses", "min-snr"):
        exp = get_experiment(name, "small")
        assert exp.name == f"{name}-small" and exp.runs
    for name in ("inversion", "flow-vs-ddpm", "ae-code-size", "seg-real", "speedrun"):
        assert callable(custom[name])

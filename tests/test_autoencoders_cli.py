"""Autoencoder runs from the command line: train a preset, sample its prior, evaluate it; and the
learning checks (slow): every kind beats PCA at equal code size, the experiments write pages."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from difusion.data import describe_datasets

TINY = [
    "data.name=digits",
    "train.steps=40",
    "train.minutes=null",
    "train.log_every=10",
    "train.threads=1",
    "autoencoder.eval_n=64",
    "autoencoder.iwae_k=4",
    "autoencoder.fid_n=64",
    "sample.n=16",
]
fashion = any(d["name"] == "fashion-mnist" and d["available"] for d in describe_datasets())


def difusion(*args):
    return subprocess.run(
        [sys.executable, "-m", "difusion.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ},
        timeout=300,
    )


def test_vae_run_trains_samples_and_evaluates(tmp_path):
    run = tmp_path / "vae"
    r = difusion("train", "vae-fmnist", *TINY, "--out", str(run), "--quiet")
    assert r.returncode == 0, r.stderr
    for name in ("reconstructions", "latent_map", "interpolation", "samples", "inpainting"):
        assert (run / f"{name}.png").exists()
    m = json.loads((run / "measures.json").read_text())
    # -L_4 <= -L_1 (Burda et al.), up to the sampling noise of 64 single-sample ELBOs
    assert m["nll_iwae_nats"] <= -m["elbo_nats"] + 0.02 * abs(m["elbo_nats"])
    assert "fid_domain_prior" in m and "ELBO" in (run / "report.md").read_text()
    r = difusion("sample", str(run), "--n", "12", "--seed", "3")
    assert r.returncode == 0, r.stderr
    with np.load(run / "samples-seed3-n12" / "samples.npz") as f:
        assert f["images"].shape == (12, 1, 8, 8) and f["seeds"][0] == 3
    assert "z ~ N(0, I)" in r.stdout
    r = difusion("eval", str(run), "--n", "64", "--quiet")
    assert r.returncode == 0, r.stderr
    assert "PCA with 32 components" in r.stdout and "NLL (IWAE" in r.stdout


def test_vqvae_sample_says_codes_are_uniform_and_ae_has_no_prior(tmp_path):
    run = tmp_path / "vq"
    r = difusion("train", "vqvae-fmnist", *TINY, "--out", str(run), "--quiet")
    assert r.returncode == 0, r.stderr
    assert "codebook:" in (run / "report.md").read_text()
    r = difusion("sample", str(run), "--n", "4")
    assert r.returncode == 0 and "uniformly at random" in r.stdout
    ae = tmp_path / "ae"
    assert difusion("train", "ae-fmnist", *TINY, "--out", str(ae), "--quiet").returncode == 0
    r = difusion("sample", str(ae))
    assert r.returncode == 2 and "no prior to sample" in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.slow
@pytest.mark.skipif(not fashion, reason="Fashion-MNIST is not installed")
@pytest.mark.parametrize("kind", ["ae", "dae", "sae", "cae", "vae", "vqvae"])
def test_each_kind_beats_pca_on_a_small_subset(tmp_path, kind):
    """A short run on 2,000 Fashion-MNIST images (16-number codes) reconstructs test images better
    than PCA with 16 components fitted on the same images."""
    from difusion.config import load_config
    from difusion.training.loop import train

    preset = {"vae": "vae-fmnist", "vqvae": "vqvae-fmnist"}.get(kind, "ae-fmnist")
    extra = ["autoencoder.spatial=false"] if kind == "vqvae" else []
    cfg = load_config(
        preset,
        [
            f"autoencoder.kind={kind}",
            "autoencoder.code_size=16",
            "autoencoder.train_subset=2000",
            "autoencoder.eval_n=500",
            "autoencoder.fid_n=0",
            "autoencoder.iwae_k=0",
            "train.steps=600",
            "train.minutes=null",
            *extra,
        ],
    )
    train(cfg, tmp_path / kind, progress=False)
    m = json.loads((tmp_path / kind / "measures.json").read_text())
    assert m["pca_code_size"] == 16
    assert m["mse"] < m["pca_mse"], m


@pytest.mark.slow
@pytest.mark.skipif(not fashion, reason="Fashion-MNIST is not installed")
def test_small_experiments_write_their_pages(tmp_path, monkeypatch):
    from difusion.experiments.runner import run_named

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    for name, needle in (("ae-code-size", "| PCA |"), ("beta-vae", "| 8 |"), ("vae-nll", "mnist")):
        page = run_named(name, "small", tmp_path / "runs", tmp_path / "results", progress=False)
        assert needle in page.read_text()
        assert json.loads((page.parent / "results.json").read_text())

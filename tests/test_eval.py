"""`difusion eval` on the domain feature network: real images score well, noise scores badly."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from difusion.data import describe_datasets, load_dataset

fashion = pytest.mark.skipif(
    not any(d["name"] == "fashion-mnist" and d["available"] for d in describe_datasets()),
    reason="Fashion-MNIST is not installed (scripts/setup.sh installs it)",
)


def write_npz(path: Path, images: torch.Tensor, labels=None) -> Path:
    arrays = {"images": images.numpy().astype(np.float32), "seeds": np.arange(len(images))}
    if labels is not None:
        arrays["labels"] = labels.numpy()
    np.savez(path, **arrays)
    return path


@fashion
def test_real_images_beat_noised_images(tmp_path, monkeypatch):
    from difusion.evaluation import evaluate

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    train = load_dataset("fashion-mnist", split="train")
    real, labels = train.data[:1000], train.labels[:1000]
    scores = []
    for noise in (0.0, 0.3, 1.0):
        x = real + noise * torch.randn(real.shape, generator=torch.Generator().manual_seed(0))
        r = evaluate(
            x.clamp(-1, 1),
            labels,
            reference="fashion-mnist:test",
            n_reference=2000,
            metrics=("fid", "kid", "pr", "acc"),
            progress=False,
        )
        scores.append(r.metrics)
        assert r.setup["n_samples"] == 1000 and r.setup["n_reference"] == 2000
    fids = [s["fid_domain"] for s in scores]
    assert fids[0] < fids[1] < fids[2]  # more corruption, larger FID
    assert scores[0]["class_accuracy"] > 0.9 > scores[2]["class_accuracy"]
    assert scores[0]["precision"] > scores[2]["precision"]
    # The reference features were cached once.
    assert len(list((tmp_path / "cache" / "difusion" / "reference").glob("*.safetensors"))) == 1


@fashion
def test_eval_cli_on_an_npz(tmp_path):
    images = load_dataset("fashion-mnist", split="train").data[:300]
    npz = write_npz(tmp_path / "samples.npz", images)
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "difusion.cli",
            "eval",
            str(npz),
            "--ref",
            "fashion-mnist:test",
            "--n-ref",
            "500",
            "--metrics",
            "fid,kid",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        env={**__import__("os").environ, **env},
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "300 samples vs 500 images of fashion-mnist:test" in proc.stdout
    result = json.loads((tmp_path / "samples-eval-domain.json").read_text())
    assert result["setup"]["features"].startswith("domain classifier")
    assert "fid_domain" in result["metrics"] and "kid_domain" in result["metrics"]


def test_eval_errors_are_one_line(tmp_path):
    bad = tmp_path / "bad.npz"
    np.savez(bad, points=np.zeros((4, 2), dtype=np.float32))
    good = write_npz(tmp_path / "good.npz", torch.zeros(4, 1, 8, 8))
    for args, words in [
        ([str(bad), "--ref", "digits:test"], "no 'images' array"),
        ([str(tmp_path / "missing.npz")], "neither a samples .npz nor a run folder"),
        ([str(good), "--ref", "digits:test", "--features", "clip"], "unknown --features"),
        ([str(good)], "--ref"),
    ]:
        proc = subprocess.run(
            [sys.executable, "-m", "difusion.cli", "eval", *args],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 2, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and words in proc.stderr, proc.stderr

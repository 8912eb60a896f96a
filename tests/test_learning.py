"""A tiny model must actually learn (design tier 3): samples end up measurably near the data."""

import json

import numpy as np
import torch

from difusion.config import load_config
from difusion.data import load_dataset
from difusion.metrics.two_d import energy_distance, sliced_wasserstein
from difusion.training.loop import train


def test_distances_can_tell_distributions_apart():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(2000, 2, generator=g), torch.randn(2000, 2, generator=g)
    shifted = b + torch.tensor([1.0, 0.0])
    assert abs(energy_distance(a, b)) < 0.02 < energy_distance(a, shifted)
    assert sliced_wasserstein(a, b) < 0.1 < sliced_wasserstein(a, shifted)


def test_mlp_learns_two_moons(tmp_path):
    cfg = load_config("toy2d", ["train.steps=1200", "sample.n=2000", "diffusion.T=100"])
    result = train(cfg, tmp_path / "run", progress=False)
    rows = [
        json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    ]
    losses = [r["loss"] for r in rows if "loss" in r]
    assert np.mean(losses[-5:]) < 0.7 * losses[0]  # the loss falls
    samples = torch.from_numpy(np.load(tmp_path / "run" / "samples.npz")["points"])
    held_out = load_dataset("toy2d", split="test", distribution="moons", n=2000).data
    noise = torch.randn(2000, 2, generator=torch.Generator().manual_seed(1))
    sw_model, sw_noise = sliced_wasserstein(samples, held_out), sliced_wasserstein(noise, held_out)
    ed_model, ed_noise = energy_distance(samples, held_out), energy_distance(noise, held_out)
    assert sw_model < 0.25 * sw_noise, (sw_model, sw_noise)
    assert ed_model < 0.1 * ed_noise, (ed_model, ed_noise)
    assert result.step == 1200 and (tmp_path / "run" / "trajectory.gif").exists()

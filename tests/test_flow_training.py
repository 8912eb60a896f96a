"""Flow matching through the one training loop: a tiny MLP learns two moons, every sampler draws
from it (CLI included), the OT coupling is optimal, reflow straightens, user mistakes are one line."""

import itertools
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from difusion.config import load_config
from difusion.data import load_dataset
from difusion.errors import ConfigError
from difusion.metrics.two_d import energy_distance, sliced_wasserstein
from difusion.training.flow_objective import ot_couple, sample_times


def test_ot_coupling_is_the_optimal_permutation():
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(6, 3, generator=g), torch.randn(6, 3, generator=g)
    paired = ot_couple(x0, eps)
    cost = (x0 - paired).pow(2).sum().item()
    best = min((x0 - eps[list(p)]).pow(2).sum().item() for p in itertools.permutations(range(6)))
    assert abs(cost - best) < 1e-5
    assert cost < (x0 - eps).pow(2).sum().item()  # the identity pairing is not optimal here
    assert sorted(paired[:, 0].tolist()) == sorted(eps[:, 0].tolist())  # a permutation of eps


@pytest.mark.parametrize("mean,std", [(0.0, 1.0), (-0.5, 0.7)])
def test_logit_normal_times_follow_their_density(mean, std):
    """Esser et al. 2024 eq. 19: P(t <= u) = Phi((logit(u) - mean) / std); checked by the largest
    gap between the empirical and the exact CDF (Kolmogorov-Smirnov, n = 20000: 0.012 is p ~ 0.005)."""
    from scipy.stats import norm

    t = sample_times(20000, torch.Generator().manual_seed(0), "logit-normal", mean, std).double()
    assert t.min() > 0.0 and t.max() < 1.0
    u = torch.linspace(0.01, 0.99, 99, dtype=torch.float64)
    exact = torch.from_numpy(norm.cdf(((torch.logit(u) - mean) / std).numpy()))
    empirical = (t[None, :] <= u[:, None]).double().mean(1)
    assert (empirical - exact).abs().max() < 0.012
    # and it is not uniform: the uniform CDF is u, far from the logit-normal one
    assert (empirical - u).abs().max() > 0.05


@pytest.mark.parametrize(
    "override,word",
    [
        ("flow.path=straight", "flow.path"),
        ("flow.sigma_min=1.5", "sigma_min"),
        ("flow.reflow=/nonexistent", "flow.reflow"),
        ("sample.sampler=fm-rk5", "sampler"),
        ("flow.time_sampling=beta", "time_sampling"),
        ("flow.logit_std=0", "logit_std"),
    ],
)
def test_bad_flow_config_is_one_line(override, word):
    with pytest.raises(ConfigError) as e:
        load_config("fm-toy2d", [override])
    assert word in str(e.value) and "\n" not in str(e.value)


def _scores(points):
    held_out = load_dataset("toy2d", split="test", distribution="moons", n=2000).data
    noise = torch.randn(2000, 2, generator=torch.Generator().manual_seed(1))
    return (
        sliced_wasserstein(points, held_out) / sliced_wasserstein(noise, held_out),
        energy_distance(points, held_out) / energy_distance(noise, held_out),
    )


@pytest.fixture(scope="module")
def moons_run(tmp_path_factory):
    from difusion.training.loop import train

    run = tmp_path_factory.mktemp("fm") / "run"
    cfg = load_config("fm-toy2d", ["train.steps=1200", "train.threads=1"])
    train(cfg, run, progress=False)
    return run


def test_mlp_flow_learns_two_moons(moons_run):
    rows = [line for line in (moons_run / "metrics.jsonl").read_text().splitlines()]
    import json

    losses = [json.loads(r)["loss"] for r in rows if '"loss"' in r]
    assert np.mean(losses[-5:]) < 0.8 * losses[0]
    pts = torch.from_numpy(np.load(moons_run / "samples.npz")["points"])  # fm-rk4, 10 steps
    sw, ed = _scores(pts)
    assert sw < 0.25 and ed < 0.1, (sw, ed)
    assert (moons_run / "trajectory.gif").exists()


def _cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "difusion.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ},
        timeout=300,
    )


@pytest.mark.parametrize("sampler,steps", [("fm-heun", 10), ("ddim", 20), ("dpmpp-2m", 10)])
def test_every_sampler_draws_from_a_flow_run(moons_run, tmp_path, sampler, steps):
    out = tmp_path / sampler
    proc = _cli(
        "sample",
        str(moons_run),
        "--sampler",
        sampler,
        "--steps",
        str(steps),
        "-n",
        "2000",
        "--out",
        str(out),
        "--quiet",
    )
    assert proc.returncode == 0, proc.stderr
    sw, ed = _scores(torch.from_numpy(np.load(out / "samples.npz")["points"]))
    assert sw < 0.25 and ed < 0.1, (sampler, sw, ed)


def test_fm_samplers_run_on_a_ddpm_model():
    # the flow solvers on an exact DDPM denoiser of a Gaussian mixture reach the mixture
    from difusion.diffusion import DDPMPath
    from difusion.diffusion.oracle import GaussianMixture, MixtureDenoiser
    from difusion.sampling.samplers import network_evaluations, run_sampler, timesteps_for

    mix = GaussianMixture(
        torch.ones(2), torch.tensor([[-2.0, 0.0], [2.0, 0.0]]), 0.1 * torch.eye(2).expand(2, 2, 2)
    )
    path = DDPMPath.from_schedule("cosine", 1000)
    ts = timesteps_for("fm-rk4", path, 10)
    assert network_evaluations("fm-rk4", ts) == 40
    x = run_sampler("fm-rk4", MixtureDenoiser(mix, path), path, torch.randn(4000, 2).double(), ts)
    ref = mix.sample(4000, torch.Generator().manual_seed(0))[0]
    assert energy_distance(x, ref) < 0.01


@pytest.mark.slow
def test_reflow_straightens_one_step_sampling(moons_run, tmp_path):
    from difusion.runs import load_run
    from difusion.sampling.pipeline import draw_samples
    from difusion.training.loop import train

    cfg = load_config(
        "fm-toy2d",
        [
            "train.steps=600",
            f"flow.reflow={moons_run}",
            "flow.reflow_pairs=4000",
            "flow.reflow_steps=25",
            "train.threads=1",
        ],
    )
    train(cfg, tmp_path / "reflow", progress=False)

    def one_step(run_dir):
        run = load_run(run_dir)
        s = draw_samples(
            run.model, run.settings(n=2000, steps=1, sampler="fm-euler"), progress=False
        )
        return _scores(s.x)[0]

    assert one_step(tmp_path / "reflow") < 0.7 * one_step(moons_run)


@pytest.mark.slow  # 515 s on the shared 2-core machine (meant to be seconds; see the report)
def test_flow_vs_ddpm_experiment_small_budget(tmp_path):
    import json

    from difusion.experiments.flow import METHODS, flow_vs_ddpm

    page = flow_vs_ddpm("small", tmp_path / "runs", tmp_path / "results", progress=False)
    result = json.loads((page.parent / "results.json").read_text())
    rows = {(r["method"], r["nfe_budget"]): r for r in result["rows"]}
    assert ("FM + fm-euler", 1) in rows and ("DDPM + ddim", 5) in rows
    assert len(rows) == sum(1 for _, _, _, k in METHODS for nfe in (1, 5) if nfe >= k)
    # one Euler step sends every sample to the mean; five steps already draw the moons' shape
    assert rows[("FM + fm-euler", 5)]["sw"] < 0.7 * rows[("FM + fm-euler", 1)]["sw"]
    assert (page.parent / "sw_vs_nfe.png").exists() and "Reproduce" in page.read_text()

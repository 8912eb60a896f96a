"""Normalizing flows (src/difusion/nflows/): coupling Jacobians against autograd, exact inverses,
IDF's bijection of the integers, the discretized logistic, a fit to a Gaussian whose NLL is known,
and tiny digits runs that must learn."""

import json
import math

import pytest
import torch
import yaml

from difusion.config import Config, load_config, load_run_config
from difusion.data.digits import load_digits
from difusion.errors import ConfigError, DifusionError
from difusion.nflows import IDF, RealNVP, eval_nflow_run, load_nflow, sample_nflow_run
from difusion.nflows.coupling import AffineCoupling, checkerboard_mask, half_mask
from difusion.nflows.dequantization import dequantized_bits_per_dim, to_levels
from difusion.nflows.idf import log_discretized_logistic, round_ste
from difusion.training.loop import train


def randomize(module: torch.nn.Module, std: float = 0.3, seed: int = 0) -> torch.nn.Module:
    """Every weight drawn at random, so no coupling is the identity it starts as."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * std)
    return module


def test_masks_keep_half_and_alternate():
    board = checkerboard_mask((1, 4, 4), 0).view(4, 4)
    assert board[0, 0] == 1 and board[0, 1] == 0 and board[1, 0] == 0 and board.sum() == 8
    assert torch.equal(checkerboard_mask((1, 4, 4), 1), 1 - checkerboard_mask((1, 4, 4), 0))
    assert half_mask(6, 0).tolist() == [1, 1, 1, 0, 0, 0]


@pytest.mark.parametrize("mask", ["checkerboard", "half"])
def test_log_det_equals_the_autograd_jacobian(mask):
    torch.manual_seed(0)
    layer = randomize(AffineCoupling(checkerboard_mask((6,), 1), 16, 2)).double()
    flow = randomize(RealNVP((1, 2, 3), 4, 16, 2, mask), seed=1).double()
    for _ in range(3):
        x = torch.randn(6, dtype=torch.double)
        _, log_det = layer(x[None])
        jac = torch.autograd.functional.jacobian(lambda v: layer(v[None])[0][0], x)
        assert log_det.item() == pytest.approx(torch.linalg.slogdet(jac)[1].item(), abs=1e-9)
        _, log_det = flow(x.view(1, 1, 2, 3))
        jac = torch.autograd.functional.jacobian(lambda v: flow(v.view(1, 1, 2, 3))[0][0], x)
        assert log_det.item() == pytest.approx(torch.linalg.slogdet(jac)[1].item(), abs=1e-9)
        assert abs(log_det.item()) > 0.1  # a coupling that does something


def test_the_inverse_restores_inputs():
    flow = randomize(RealNVP((1, 8, 8), 8, 32, 2, "checkerboard"), std=0.1)
    x = torch.rand(16, 1, 8, 8) * 2 - 1
    z, _ = flow(x)
    assert (z - x.flatten(1)).abs().max() > 0.1
    assert (flow.inverse(z) - x).abs().max() < 1e-5


def test_idf_is_exactly_invertible_on_integers():
    flow = randomize(IDF((1, 8, 8), 8, 32, 2, "checkerboard", 17, 4), std=0.1)
    k = torch.randint(0, 17, (64, 1, 8, 8)).float()
    z = flow(k)
    assert torch.equal(z, z.round()) and not torch.equal(z, k.flatten(1))
    assert z.abs().max() < 2**24  # float32 holds every integer up to 2^24 exactly
    assert torch.equal(flow.inverse(z), k)
    samples = flow.sample(8, seed=3)
    assert torch.equal(samples, samples.round())
    assert torch.equal(flow.sample(8, seed=3)[2:], flow.sample(6, seed=5))  # sample i: seed + i


def test_round_ste_rounds_forward_and_passes_gradients_back():
    t = torch.tensor([0.4, 1.6, -2.5], requires_grad=True)
    y = round_ste(t)
    assert y.tolist() == [0.0, 2.0, -2.0]
    (y * torch.tensor([1.0, 2.0, 3.0])).sum().backward()
    assert t.grad.tolist() == [1.0, 2.0, 3.0]


def test_the_discretized_logistic_sums_to_one_and_is_stable_in_its_tails():
    z = torch.arange(-400, 401).float()
    for mu, s in ((3.3, 2.0), (-7.0, 0.2), (0.5, 30.0)):
        log_p = log_discretized_logistic(z, torch.tensor(mu), torch.tensor(math.log(s)))
        assert log_p.exp().sum().item() == pytest.approx(1.0, abs=1e-5)
        # P(z) = sigmoid((z + 1/2 - mu)/s) - sigmoid((z - 1/2 - mu)/s), checked directly
        z0 = torch.tensor(round(mu))
        direct = torch.sigmoid((z0 + 0.5 - mu) / s) - torch.sigmoid((z0 - 0.5 - mu) / s)
        log_z0 = log_discretized_logistic(z0, torch.tensor(mu), torch.tensor(math.log(s)))
        assert log_z0.exp().item() == pytest.approx(direct.item(), rel=1e-5)
    far = log_discretized_logistic(torch.tensor([-1e4, 1e4]), torch.tensor(0.0), torch.tensor(0.0))
    assert torch.isfinite(far).all() and (far < -1e3).all()


def test_the_dequantized_bound_of_the_uniform_model_is_log2_levels():
    d = 64  # p(x) = 2^-D on [-1, 1)^D
    bits = dequantized_bits_per_dim(torch.tensor([-d * math.log(2)]), d, 17)
    assert bits.item() == pytest.approx(math.log2(17))
    with pytest.raises(DifusionError, match="do not lie on 256 grey levels"):
        to_levels(load_digits("test").data, 256)  # the digits have 17 levels


def test_realnvp_fitted_to_a_gaussian_reaches_its_exact_nll():
    """Margin: 0.03 nats per point against the Gaussian's own NLL on the same 4,000 test points."""
    torch.manual_seed(0)
    mean = torch.tensor([1.0, -0.5])
    chol = torch.linalg.cholesky(torch.tensor([[1.0, 0.8], [0.8, 1.0]]))
    truth = torch.distributions.MultivariateNormal(mean, scale_tril=chol)
    g = torch.Generator().manual_seed(1)
    test = mean + torch.randn(4000, 2, generator=g) @ chol.T
    flow = RealNVP((2,), 4, 32, 2, "checkerboard")
    opt = torch.optim.Adam(flow.parameters(), 3e-3)
    for step in range(1500):
        x = mean + torch.randn(256, 2, generator=g) @ chol.T
        loss = -flow.log_prob(x).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step == 1000:
            opt.param_groups[0]["lr"] = 3e-4
    with torch.no_grad():
        gap = (-flow.log_prob(test)).mean() - (-truth.log_prob(test)).mean()
    assert abs(gap.item()) < 0.03, gap


@pytest.mark.parametrize(
    ("preset", "steps", "below"), [("realnvp-digits", 400, 3.3), ("idf-digits", 800, 3.5)]
)
def test_a_tiny_digits_run_learns(tmp_path, monkeypatch, capsys, preset, steps, below):
    over = [f"train.steps={steps}", "train.ema_decay=0.98", "train.threads=1", "sample.n=16"]
    run = train(load_config(preset, over), tmp_path / "run", progress=False).run_dir
    m = json.loads((run / "measures.json").read_text())
    uniform = math.log2(17)
    assert m["uniform_bits_per_dim"] == pytest.approx(uniform)
    assert m["test_bits_per_dim"] < below < uniform, m  # the uniform model: 4.09 bits/dim
    assert m.get("inverse_exact", True) and m.get("inverse_max_error", 0.0) < 1e-4
    flow = load_nflow(run)
    assert flow.step == steps and flow.config.nflow.kind == preset.split("-")[0]
    again, _ = eval_nflow_run(run, n=50)
    assert again["test_n"] == 50 and again["test_bits_per_dim"] < uniform
    files = sample_nflow_run(run, 4, seed=2, out=tmp_path / "s")
    assert files["samples"].is_file() and files["samples_npz"].is_file()
    # and from the command line: `difusion sample` and `difusion eval` reach the same functions
    from test_run_folders import assert_family_cli

    assert_family_cli(monkeypatch, capsys, run, tmp_path / "c")


def test_the_config_refuses_idf_on_points_and_old_runs_still_load(tmp_path):
    with pytest.raises(ConfigError, match="nflow.kind=idf models integers"):
        load_config("realnvp-toy2d", ["nflow.kind=idf"])
    with pytest.raises(ConfigError, match="nflow.mask must be one of"):
        load_config("realnvp-toy2d", ["nflow.mask=diagonal"])
    values = Config().to_dict()
    del values["nflow"]  # a run folder written before the section existed
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(values))
    assert load_run_config(tmp_path).objective == "diffusion"
    values["objective"] = "nflow"  # but an nflow run needs its own section
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(values))
    with pytest.raises(ConfigError, match="lacks nflow"):
        load_run_config(tmp_path)


def test_a_run_loads_whatever_another_objectives_later_section_says(tmp_path):
    """A diffusion run never reads the nflow section: a key that section has lost (or gained) since
    the run was written does not stop the run from loading. Its own sections stay strict."""
    values = Config().to_dict()
    values["nflow"]["a_key_from_another_version"] = 1
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(values))
    assert load_run_config(tmp_path).objective == "diffusion"
    values["objective"] = "nflow"  # an nflow run reads it, so there the key is an error
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(values))
    with pytest.raises(ConfigError, match="a_key_from_another_version"):
        load_run_config(tmp_path)

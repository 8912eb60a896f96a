"""Discrete likelihoods on the data's own bins: 256 levels for 8-bit images, 17 for the digits.

A bits/dim is -log2 P(x) / D for x on a grid of L values; the bin width 2/(L - 1) is part of the
number, so the code takes L from the dataset and refuses data that is not on that grid.
"""

from __future__ import annotations

import math

import pytest
import torch

from difusion.data import data_levels, load_dataset
from difusion.diffusion.likelihood import check_on_grid, discretized_gaussian_log_likelihood
from difusion.diffusion.likelihood_ode import bits_per_dim, dequantize, level_bin
from difusion.errors import DifusionError


def grid(levels: int) -> torch.Tensor:
    return torch.arange(levels, dtype=torch.float64) * 2 / (levels - 1) - 1


@pytest.mark.parametrize("levels", [2, 17, 256])
def test_the_discretized_decoder_conserves_probability(levels):
    """Summed over the L values of the grid, P(x | mean, sigma) is 1 for any Gaussian."""
    g = torch.Generator().manual_seed(levels)
    mean = torch.randn(50, 1, generator=g, dtype=torch.float64) * 0.8
    log_scale = torch.rand(50, 1, generator=g, dtype=torch.float64) * 4 - 5  # sigma 0.007 .. 0.37
    x = grid(levels).expand(50, levels)
    p = discretized_gaussian_log_likelihood(x, mean, log_scale, levels).exp().sum(dim=1)
    assert torch.allclose(p, torch.ones(50, dtype=torch.float64), atol=1e-9)


def test_an_inner_bin_is_the_gaussian_mass_on_it():
    """For 17 levels the bin of x is [x - 1/16, x + 1/16] (eq. 13 with the digits' bins)."""
    x, mean, sigma = torch.tensor([0.25]), torch.tensor([0.3]), 0.05
    got = discretized_gaussian_log_likelihood(x, mean, torch.tensor([math.log(sigma)]), 17).exp()
    normal = torch.distributions.Normal(0.3, sigma)
    want = normal.cdf(torch.tensor(0.25 + 1 / 16)) - normal.cdf(torch.tensor(0.25 - 1 / 16))
    assert float(got) == pytest.approx(float(want), rel=1e-5)


def test_uniform_density_on_the_dequantized_grid_is_log2_levels():
    """Dequantized L-level data fills [-1 - b/2, 1 + b/2] (b = 2/(L-1)); the uniform density on it
    has exactly log2 L bits/dim, the uniform model's code length: 4.087 for the digits."""
    for levels in (17, 256):
        b, dims = level_bin(levels), 64
        log_p = torch.tensor([-dims * math.log(levels * b)], dtype=torch.float64)
        assert float(bits_per_dim(log_p, dims, b)) == pytest.approx(math.log2(levels), abs=1e-12)
    x = load_dataset("digits", split="test").data
    u = dequantize(x, torch.Generator().manual_seed(0), 17)
    assert float(u.min()) >= -1 - 1 / 16 and float(u.max()) <= 1 + 1 / 16
    assert torch.equal(((u + 1) * 8).round(), ((x + 1) * 8).round())  # every value stays in its bin


def test_data_off_the_grid_is_refused():
    digits = load_dataset("digits", split="test").data
    check_on_grid(digits, data_levels("digits"))  # 17: fine
    with pytest.raises(DifusionError, match="not on 256 levels") as error:
        check_on_grid(digits, 256)
    assert "\n" not in str(error.value)
    eight_bit = torch.arange(256, dtype=torch.float32) / 127.5 - 1
    check_on_grid(eight_bit, 256)
    with pytest.raises(DifusionError, match="not on 17 levels"):
        check_on_grid(eight_bit, 17)
    assert data_levels("fashion-mnist") == 256 and data_levels("digits") == 17
    with pytest.raises(DifusionError, match="not discrete image data"):
        data_levels("toy2d")

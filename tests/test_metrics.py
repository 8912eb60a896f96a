"""Feature-space metrics: FID, KID, precision/recall, class accuracy/coverage."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import math  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import scipy.linalg  # noqa: E402
import torch  # noqa: E402

from difusion.errors import DifusionError  # noqa: E402
from difusion.metrics.classes import class_accuracy, class_coverage  # noqa: E402
from difusion.metrics.fid import (  # noqa: E402
    feature_statistics,
    fid_from_features,
    frechet_distance,
)
from difusion.metrics.kid import kid, polynomial_kernel  # noqa: E402
from difusion.metrics.precision_recall import precision_recall  # noqa: E402


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _random_spd(d: int, seed: int) -> torch.Tensor:
    a = torch.randn(d, d, generator=_gen(seed), dtype=torch.float64)
    return a @ a.T / d + 0.1 * torch.eye(d, dtype=torch.float64)


def _gaussian(n: int, mu: torch.Tensor, sigma: torch.Tensor, seed: int) -> torch.Tensor:
    z = torch.randn(n, mu.shape[0], generator=_gen(seed), dtype=torch.float64)
    return mu + z @ torch.linalg.cholesky(sigma).T


# ----------------------------------------------------------------------------- FID


def test_frechet_distance_diagonal_closed_form() -> None:
    m1 = torch.tensor([0.0, 1.0, -2.0, 3.0], dtype=torch.float64)
    m2 = torch.tensor([1.0, 1.0, 0.5, -1.0], dtype=torch.float64)
    a = torch.tensor([1.0, 4.0, 0.25, 9.0], dtype=torch.float64)
    b = torch.tensor([2.0, 1.0, 0.25, 0.01], dtype=torch.float64)
    expected = float(((m1 - m2) ** 2).sum() + ((a.sqrt() - b.sqrt()) ** 2).sum())
    got = frechet_distance(m1, torch.diag(a), m2, torch.diag(b))
    assert got == pytest.approx(expected, rel=1e-12, abs=1e-12)


def test_frechet_distance_commuting_non_diagonal() -> None:
    # Same eigenvectors, different eigenvalues: the matrices commute, so the trace term is
    # sum (sqrt(a_i) - sqrt(b_i))^2 in the shared eigenbasis.
    q, _ = torch.linalg.qr(torch.randn(5, 5, generator=_gen(1), dtype=torch.float64))
    a = torch.tensor([0.5, 1.0, 2.0, 3.0, 7.0], dtype=torch.float64)
    b = torch.tensor([4.0, 0.2, 2.0, 1.0, 0.3], dtype=torch.float64)
    s1, s2 = q @ torch.diag(a) @ q.T, q @ torch.diag(b) @ q.T
    mu = torch.zeros(5, dtype=torch.float64)
    expected = float(((a.sqrt() - b.sqrt()) ** 2).sum())
    assert frechet_distance(mu, s1, mu, s2) == pytest.approx(expected, rel=1e-10)


def test_frechet_distance_non_commuting_against_scipy_sqrtm() -> None:
    d = 12
    s1, s2 = _random_spd(d, 2), _random_spd(d, 3)
    assert not torch.allclose(s1 @ s2, s2 @ s1)
    m1 = torch.randn(d, generator=_gen(4), dtype=torch.float64)
    m2 = torch.randn(d, generator=_gen(5), dtype=torch.float64)
    n1, n2 = s1.numpy(), s2.numpy()
    covmean = scipy.linalg.sqrtm(n1 @ n2)
    expected = float(
        np.sum((m1.numpy() - m2.numpy()) ** 2)
        + np.trace(n1)
        + np.trace(n2)
        - 2 * np.trace(np.real(covmean))
    )
    assert frechet_distance(m1, s1, m2, s2) == pytest.approx(expected, rel=1e-9)
    # symmetric in its two arguments
    assert frechet_distance(m2, s2, m1, s1) == pytest.approx(expected, rel=1e-9)


def test_fid_of_a_set_with_itself_is_zero() -> None:
    x = torch.randn(500, 32, generator=_gen(6)) * 3 + 1
    assert abs(fid_from_features(x, x)) < 1e-6
    # few samples (N < D, singular covariance) still gives a finite ~0 for identical sets
    small = torch.randn(10, 64, generator=_gen(7))
    assert abs(fid_from_features(small, small)) < 1e-5


def test_sample_fid_approaches_closed_form() -> None:
    d = 6
    s1, s2 = _random_spd(d, 10), _random_spd(d, 11)
    m1 = torch.zeros(d, dtype=torch.float64)
    m2 = torch.full((d,), 0.5, dtype=torch.float64)
    exact = frechet_distance(m1, s1, m2, s2)
    rmse = []
    for n in (100, 1000, 20000):
        # root-mean-square error over a few draws, so one lucky sample cannot fake the trend
        est = torch.tensor(
            [
                fid_from_features(_gaussian(n, m1, s1, 100 + r), _gaussian(n, m2, s2, 200 + r))
                for r in range(6)
            ]
        )
        rmse.append(float((est - exact).square().mean().sqrt()))
    assert rmse[2] < rmse[1] < rmse[0] / 3, rmse
    assert rmse[2] < 0.05 * exact, (rmse, exact)


def test_fid_monotone_in_perturbation() -> None:
    d, n = 8, 4000
    a = torch.randn(n, d, generator=_gen(20), dtype=torch.float64)
    base = torch.randn(n, d, generator=_gen(21), dtype=torch.float64)
    noise = torch.randn(n, d, generator=_gen(22), dtype=torch.float64)
    fids = [fid_from_features(a, base + t * noise + t / 2) for t in (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)]
    assert all(x < y for x, y in zip(fids, fids[1:], strict=False)), fids


def test_fid_matches_torchmetrics() -> None:
    fid_module = pytest.importorskip("torchmetrics.image.fid")
    a = torch.randn(600, 16, generator=_gen(30), dtype=torch.float64)
    b = torch.randn(600, 16, generator=_gen(31), dtype=torch.float64) * 1.3 + 0.2
    ours = fid_from_features(a, b)

    compute = getattr(fid_module, "_compute_fid", None)
    if compute is not None:
        mu1, s1 = feature_statistics(a)
        mu2, s2 = feature_statistics(b)
        assert float(compute(mu1, s1, mu2, s2)) == pytest.approx(ours, rel=1e-8)

    class Identity(torch.nn.Module):
        """Feature 'network' that hands the given features straight to torchmetrics."""

        num_features = 16

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

    try:
        metric = fid_module.FrechetInceptionDistance(feature=Identity())
    except (ImportError, ModuleNotFoundError) as err:  # pragma: no cover - depends on install
        pytest.skip(f"torchmetrics FrechetInceptionDistance unusable here: {err}")
    metric.update(a, real=True)
    metric.update(b, real=False)
    assert float(metric.compute()) == pytest.approx(ours, rel=1e-6)


def test_fid_errors() -> None:
    with pytest.raises(DifusionError, match="at least 2"):
        fid_from_features(torch.randn(1, 4), torch.randn(5, 4))
    with pytest.raises(DifusionError, match="dimensions"):
        fid_from_features(torch.randn(5, 4), torch.randn(5, 3))
    with pytest.raises(DifusionError):
        frechet_distance(torch.zeros(3), torch.eye(3), torch.zeros(4), torch.eye(4))
    with pytest.raises(DifusionError, match="shape"):
        fid_from_features(torch.randn(5), torch.randn(5, 3))


# ----------------------------------------------------------------------------- KID


def test_kid_same_distribution_near_zero_and_shift_positive() -> None:
    a = torch.randn(1000, 32, generator=_gen(40))
    b = torch.randn(1000, 32, generator=_gen(41))
    mean, std = kid(a, b, subsets=50, subset_size=200)
    assert abs(mean) < 3 * std or abs(mean) < 1e-3, (mean, std)
    mean_shift, std_shift = kid(a, b + 1.0, subsets=50, subset_size=200)
    assert mean_shift > 10 * std_shift and mean_shift > 0.1
    assert mean_shift > 20 * abs(mean)


def test_kid_deterministic_and_clipped() -> None:
    a = torch.randn(50, 8, generator=_gen(42))
    b = torch.randn(30, 8, generator=_gen(43)) + 0.5
    assert kid(a, b, subsets=5, seed=3) == kid(a, b, subsets=5, seed=3)
    # subset_size 1000 is clipped to 30, so every subset of b is all of b
    mean, std = kid(a, b, subsets=5, subset_size=1000)
    assert math.isfinite(mean) and std >= 0
    with pytest.raises(DifusionError):
        kid(a, torch.randn(10, 7))


def test_kid_unbiased_but_diagonal_version_is_not() -> None:
    m, d, draws = 40, 16, 200
    unbiased, biased = [], []
    for r in range(draws):
        x = torch.randn(m, d, generator=_gen(1000 + r), dtype=torch.float64)
        y = torch.randn(m, d, generator=_gen(5000 + r), dtype=torch.float64)
        unbiased.append(kid(x, y, subsets=1, subset_size=m)[0])
        # biased V-statistic: keeps the diagonal k(x_i, x_i) terms
        v = (
            polynomial_kernel(x, x).mean()
            + polynomial_kernel(y, y).mean()
            - 2 * polynomial_kernel(x, y).mean()
        )
        biased.append(float(v))
    u, bsd = torch.tensor(unbiased), torch.tensor(biased)
    se_u = float(u.std()) / math.sqrt(draws)
    se_b = float(bsd.std()) / math.sqrt(draws)
    assert abs(float(u.mean())) < 4 * se_u, (float(u.mean()), se_u)
    # the same check must reject the biased estimator
    assert float(bsd.mean()) > 4 * se_b
    assert float(bsd.mean()) > 0


# ----------------------------------------------------------------------------- precision / recall


def test_precision_recall_identical_and_same_distribution() -> None:
    real = torch.randn(1000, 8, generator=_gen(50))
    assert precision_recall(real, real.clone()) == (1.0, 1.0)
    fake = torch.randn(1000, 8, generator=_gen(51))
    p, r = precision_recall(real, fake)
    assert p > 0.75 and r > 0.75, (p, r)


def test_precision_recall_far_apart() -> None:
    real = torch.randn(500, 8, generator=_gen(52))
    fake = torch.randn(500, 8, generator=_gen(53)) + 100.0
    assert precision_recall(real, fake) == (0.0, 0.0)


def test_precision_recall_mode_dropping() -> None:
    real = torch.randn(1500, 4, generator=_gen(54))
    pool = torch.randn(4000, 4, generator=_gen(55))
    fake = pool[pool[:, 0] > 0][:1500]  # only half of the real cloud
    p, r = precision_recall(real, fake)
    assert p > 0.9, p
    assert r < 0.7, r


def test_precision_recall_outliers_lower_precision() -> None:
    real = torch.randn(1500, 4, generator=_gen(56))
    fake = torch.randn(1500, 4, generator=_gen(57))
    p_clean, _ = precision_recall(real, fake)
    spread = fake.clone()
    spread[:500] = torch.rand(500, 4, generator=_gen(58)) * 40 - 20  # uniform in a wide box
    p_out, _ = precision_recall(real, spread)
    assert p_out < p_clean - 0.2, (p_clean, p_out)


def test_precision_recall_blocked_matches_direct(monkeypatch: pytest.MonkeyPatch) -> None:
    import difusion.metrics.precision_recall as pr

    real = torch.randn(300, 5, generator=_gen(59))
    fake = torch.randn(200, 5, generator=_gen(60)) * 1.5
    direct = pr.precision_recall(real, fake, k=5)
    monkeypatch.setattr(pr, "_BLOCK_ENTRIES", 1000)  # forces many small blocks
    assert pr.precision_recall(real, fake, k=5) == direct
    with pytest.raises(DifusionError):
        pr.precision_recall(real[:3], fake, k=3)


# ----------------------------------------------------------------------------- classes


def test_class_accuracy() -> None:
    requested = torch.tensor([0, 1, 2, 3])
    assert class_accuracy(torch.tensor([0, 1, 2, 0]), requested) == 0.75
    logits = torch.tensor(
        [[5.0, 0.0, 0.0, 0.0], [0.0, 1.0, 2.0, 0.0], [0.0, 0.0, 3.0, 0.0], [0.0, 0.0, 0.0, 1.0]]
    )
    assert class_accuracy(logits, requested) == 0.75  # second row predicts 2, not 1
    with pytest.raises(DifusionError):
        class_accuracy(torch.tensor([0, 1]), requested)


def test_class_coverage() -> None:
    uniform = class_coverage(torch.tensor([0, 1, 2, 3, 0, 1, 2, 3]), 4)
    assert uniform["covered"] == 4
    assert uniform["normalized_entropy"] == pytest.approx(1.0)
    assert uniform["histogram"] == [2, 2, 2, 2]

    collapsed = class_coverage(torch.tensor([2, 2, 2]), 4)
    assert collapsed["covered"] == 1
    assert collapsed["fraction_covered"] == 0.25
    assert collapsed["normalized_entropy"] == pytest.approx(0.0)

    half = class_coverage(torch.tensor([0, 1, 0, 1]), 4)  # uniform over 2 of 4 classes
    assert half["covered"] == 2
    assert half["normalized_entropy"] == pytest.approx(math.log(2) / math.log(4))

    with pytest.raises(DifusionError):
        class_coverage(torch.tensor([0, 5]), 4)

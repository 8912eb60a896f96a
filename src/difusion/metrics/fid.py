"""Fréchet distance between Gaussians fitted to feature sets (the "FID" when the features are Inception's).

Heusel et al. 2017, "GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash
Equilibrium", eq. 6, using the closed form of the 2-Wasserstein distance between Gaussians
(Dowson & Landau 1982):

    d^2 = ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1^{1/2} S2 S1^{1/2})^{1/2}).

Everything here works on feature matrices of shape (N, D); which network made the features is
the caller's business.
"""

from __future__ import annotations

import torch

from difusion.errors import DifusionError


def as_feature_matrix(x: torch.Tensor, name: str, min_rows: int = 2) -> torch.Tensor:
    """Check that ``x`` is a finite (N, D) matrix with N >= ``min_rows``; return it as float64."""
    if not isinstance(x, torch.Tensor):
        raise DifusionError(
            f"{name} must be a torch.Tensor of shape (N, D), got {type(x).__name__}"
        )
    if x.dim() != 2:
        raise DifusionError(f"{name} must have shape (N, D), got shape {tuple(x.shape)}")
    if x.shape[0] < min_rows:
        raise DifusionError(f"{name} needs at least {min_rows} samples, got {x.shape[0]}")
    if x.shape[1] < 1:
        raise DifusionError(f"{name} has no feature dimensions (shape {tuple(x.shape)})")
    x = x.detach().to(dtype=torch.float64, device="cpu")
    if not torch.isfinite(x).all():
        raise DifusionError(f"{name} contains NaN or infinite values")
    return x


def feature_statistics(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (D,) and unbiased sample covariance (D, D) of an (N, D) feature matrix, in float64.

    These are the mu and Sigma of Heusel et al. 2017, eq. 6. The covariance divides by N - 1.
    Raises DifusionError for fewer than 2 samples.
    """
    x = as_feature_matrix(features, "features")
    mu = x.mean(dim=0)
    centred = x - mu
    sigma = centred.T @ centred / (x.shape[0] - 1)
    return mu, (sigma + sigma.T) / 2


def _psd_sqrt(matrix: torch.Tensor) -> torch.Tensor:
    """Symmetric square root of a symmetric PSD matrix via eigh (tiny negative eigenvalues -> 0)."""
    vals, vecs = torch.linalg.eigh((matrix + matrix.T) / 2)
    return (vecs * vals.clamp(min=0).sqrt()) @ vecs.T


def frechet_distance(
    mu1: torch.Tensor, sigma1: torch.Tensor, mu2: torch.Tensor, sigma2: torch.Tensor
) -> float:
    """Fréchet (2-Wasserstein) distance squared between N(mu1, sigma1) and N(mu2, sigma2).

    Heusel et al. 2017, eq. 6 (Dowson & Landau 1982):
    ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1^{1/2} S2 S1^{1/2})^{1/2}).

    Computed in float64 in the symmetric form: S1^{1/2} from ``eigh(S1)``, then the eigenvalues of
    the symmetric PSD matrix M = S1^{1/2} S2 S1^{1/2} from ``eigvalsh``; rounding can make a few of
    them slightly negative, those are clamped to 0, and Tr(M^{1/2}) = sum sqrt(eigenvalues). This
    avoids the complex eigenvalues / imaginary parts that a non-symmetric sqrtm(S1 S2) produces.
    Tr(M^{1/2}) equals Tr((S1 S2)^{1/2}) since S1 S2 is similar to M.
    """
    mu1, mu2 = mu1.detach().double().cpu(), mu2.detach().double().cpu()
    s1, s2 = sigma1.detach().double().cpu(), sigma2.detach().double().cpu()
    if mu1.dim() != 1 or mu2.dim() != 1:
        raise DifusionError(
            f"means must be vectors, got shapes {tuple(mu1.shape)} and {tuple(mu2.shape)}"
        )
    d = mu1.shape[0]
    if mu2.shape[0] != d or s1.shape != (d, d) or s2.shape != (d, d):
        raise DifusionError(
            f"mismatched dimensions: mu1 {tuple(mu1.shape)}, sigma1 {tuple(s1.shape)}, "
            f"mu2 {tuple(mu2.shape)}, sigma2 {tuple(s2.shape)}"
        )
    root1 = _psd_sqrt(s1)
    m = root1 @ s2 @ root1
    eig = torch.linalg.eigvalsh((m + m.T) / 2).clamp(min=0)
    trace_term = torch.trace(s1) + torch.trace(s2) - 2 * eig.sqrt().sum()
    return float((mu1 - mu2).square().sum() + trace_term)


def fid_from_features(a: torch.Tensor, b: torch.Tensor) -> float:
    """Fréchet distance (Heusel et al. 2017, eq. 6) between Gaussians fitted to two (N, D) feature sets.

    Few samples: the estimate is biased upward and noisy. With N <= D the sample covariance is
    singular (rank at most N - 1), so the Gaussian fit is degenerate and the number says little
    about the distributions. Even with N > D the bias is large; Chong & Forsyth 2020 ("Effectively
    Unbiased FID and Inception Score and where to find them") show it is close to linear in 1/N.
    So an FID is only comparable with another FID computed at the same N (and the same features).

    Raises DifusionError for fewer than 2 samples in either set or mismatched feature dimensions.
    """
    a = as_feature_matrix(a, "first feature set")
    b = as_feature_matrix(b, "second feature set")
    if a.shape[1] != b.shape[1]:
        raise DifusionError(
            f"feature dimensions differ: {a.shape[1]} vs {b.shape[1]} (use the same feature network)"
        )
    mu1, s1 = feature_statistics(a)
    mu2, s2 = feature_statistics(b)
    return frechet_distance(mu1, s1, mu2, s2)

"""Classifier-free guidance (Ho & Salimans 2022) as a wrapper: a conditional denoiser in, a guided one out.

Convention (stated once, used everywhere in difusion): with guidance scale w,

    eps_guided = (1 + w) eps(x_t, t, y) - w eps(x_t, t, null)      (Ho & Salimans eq. 6)

so w = 0 is plain conditional sampling and larger w pushes away from the unconditional model. (Some
libraries write the same thing with s = 1 + w.) At fixed x_t and t the x_0 and eps estimates are
affine images of each other, so the same weights give the guided x_0 estimate.

Optional rescaling (Lin et al. 2023, Sec. 3.4, phi = 0.7): large w inflates the guided prediction;
it is scaled back per image to the standard deviation of the conditional one and mixed in,

    x_rescaled = x_cfg * std(x_cond) / std(x_cfg),    x_final = phi x_rescaled + (1 - phi) x_cfg.

Here the rescaled quantity is the x_0 estimate (the image being aimed at); eps follows from it.

Optional interval (Kynkaanniemi et al. 2024, "Applying guidance in a limited interval improves sample
and distribution quality in diffusion models", arXiv 2404.07724, eq. 5 and Sec. 3): guide only at
middle noise levels and sample plain conditionally elsewhere. Guidance at high noise pulls every
sample of a class towards the same few modes (less variety); at low noise it changes little but
costs a second network call. The interval is stated in the noise fraction

    tau = sigma_t / (alpha_t + sigma_t)      (the time of the rectified flow at equal SNR),

the same number for every Gaussian path: 0 is data, 1 is pure noise, and a flow run's t is tau.
The paper's EDM noise level is sigma_t / alpha_t = tau / (1 - tau).
"""

from __future__ import annotations

import torch

from difusion.diffusion.parameterization import eps_from_x0


def check_interval(interval) -> tuple[float, float]:
    """(lo, hi) with 0 <= lo < hi <= 1, or a ConfigError that says how to write it."""
    from difusion.errors import ConfigError

    try:
        lo, hi = (float(v) for v in interval)
    except (TypeError, ValueError):
        raise ConfigError(
            f"the guidance interval must be two numbers [lo, hi], got {interval!r}"
        ) from None
    if not 0.0 <= lo < hi <= 1.0:
        raise ConfigError(
            f"the guidance interval [lo, hi] must have 0 <= lo < hi <= 1 (noise fractions), "
            f"got [{lo:g}, {hi:g}]"
        )
    return lo, hi


INTERVAL_HELP = (
    "Guide only at noise fractions sigma / (alpha + sigma) in LO,HI (Kynkaanniemi et al. 2024), "
    "e.g. 0.3,0.8; 0,1 = every step"
)


def parse_interval(text: str) -> list[float]:
    """``"0.3,0.8"`` -> [0.3, 0.8] (checked), for the CLI's --guidance-interval."""
    from difusion.errors import ConfigError

    parts = text.replace(" ", "").split(",")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) != 2:
        raise ConfigError(
            f"--guidance-interval takes two numbers LO,HI such as 0.3,0.8; got {text!r}"
        )
    return list(check_interval(values))


def interval_suffix(w: float, interval) -> str:
    """``-i0.3-0.8`` for a folder name when guidance is on and limited to an interval, else ''."""
    lo, hi = check_interval(interval)
    return f"-i{lo:g}-{hi:g}" if w and (lo, hi) != (0.0, 1.0) else ""


def guides_at(tau: float, interval: tuple[float, float]) -> bool:
    """Whether guidance applies at noise fraction ``tau``: lo <= tau <= hi (Kynkaanniemi et al.)."""
    return interval[0] <= tau <= interval[1]


class GuidedDenoiser:
    """Turn a class-conditional denoiser into a guided one; both predictions come from one batch.
    Written once for every model: the raw (unclipped) x_0 and eps estimates of the two branches are
    combined with eq. 6, then rescaled and clipped (so the inner denoiser must not clip).

    ``null_label`` is the label of the empty condition the network was trained with (our networks:
    ``num_classes``). ``clip_x0`` clamps the guided x_0 estimate to [-1, 1] (images). ``interval``
    (lo, hi) of noise fractions tau: outside it the plain conditional prediction is returned, with
    one network call instead of two.
    """

    def __init__(
        self,
        denoiser,
        path,
        w: float,
        null_label: int,
        *,
        rescale: float = 0.0,
        clip_x0: bool = False,
        interval: tuple[float, float] = (0.0, 1.0),
    ):
        self.denoiser, self.path, self.w, self.null_label = denoiser, path, float(w), null_label
        self.rescale, self.clip_x0 = float(rescale), clip_x0
        self.interval = check_interval(interval)

    @torch.no_grad()
    def __call__(self, x_t: torch.Tensor, t, y: torch.Tensor | None = None):
        if y is None or self.w == 0.0 or not self._guides(t):
            # unconditional, w = 0 or outside the interval: the plain (conditional) prediction
            x0, eps = self.denoiser(x_t, t, y)
            return self._clipped(x_t, t, x0, eps) if self.clip_x0 else (x0, eps)
        n = x_t.shape[0]
        null = torch.full_like(y, self.null_label)
        t2 = torch.cat([t, t]) if torch.is_tensor(t) and t.dim() > 0 else t
        x0_both, eps_both = self.denoiser(torch.cat([x_t, x_t]), t2, torch.cat([y, null]))
        x0_c, x0_u = x0_both[:n], x0_both[n:]
        eps_c, eps_u = eps_both[:n], eps_both[n:]
        x0 = (1 + self.w) * x0_c - self.w * x0_u  # eq. 6, in x_0 form
        eps = (1 + self.w) * eps_c - self.w * eps_u
        if self.rescale > 0.0:
            dims = tuple(range(1, x0.dim()))
            ratio = x0_c.std(dim=dims, keepdim=True) / x0.std(dim=dims, keepdim=True)
            x0 = self.rescale * (x0 * ratio) + (1 - self.rescale) * x0
            return self._clipped(x_t, t, x0, eps)
        return self._clipped(x_t, t, x0, eps) if self.clip_x0 else (x0, eps)

    def _guides(self, t) -> bool:
        if self.interval == (0.0, 1.0):
            return True
        return guides_at(
            self.path.noise_fraction(t.flatten()[0] if torch.is_tensor(t) else t), self.interval
        )

    def _clipped(self, x_t, t, x0, eps):
        """Clip x_0 (images) and recompute eps from it; at sigma = 0 (clean data, where the flow
        solvers evaluate their last stage) eps is not determined by x_0 and is kept."""
        if self.clip_x0:
            x0 = x0.clamp(-1.0, 1.0)
        alpha, sigma = self.path.alpha_t(t, x_t), self.path.sigma_t(t, x_t)
        safe = torch.where(sigma > 0, sigma, torch.ones_like(sigma))
        return x0, torch.where(sigma > 0, eps_from_x0(x_t, x0, alpha, safe), eps)

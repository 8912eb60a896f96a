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
"""

from __future__ import annotations

import torch

from difusion.diffusion.parameterization import eps_from_x0


class GuidedDenoiser:
    """Turn a class-conditional denoiser into a guided one; both predictions come from one batch.

    ``null_label`` is the label of the empty condition the network was trained with (our networks:
    ``num_classes``). ``clip_x0`` clamps the guided x_0 estimate to [-1, 1] (images).
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
    ):
        self.denoiser, self.path, self.w, self.null_label = denoiser, path, float(w), null_label
        self.rescale, self.clip_x0 = float(rescale), clip_x0

    @torch.no_grad()
    def __call__(self, x_t: torch.Tensor, t, y: torch.Tensor | None = None):
        if y is None or self.w == 0.0:
            return self.denoiser(x_t, t, y)  # unconditional, or w = 0: nothing to guide
        n = x_t.shape[0]
        null = torch.full_like(y, self.null_label)
        t2 = torch.cat([t, t]) if torch.is_tensor(t) and t.dim() > 0 else t
        x0_both, eps_both = self.denoiser(torch.cat([x_t, x_t]), t2, torch.cat([y, null]))
        x0_c, x0_u = x0_both[:n], x0_both[n:]
        eps_c, eps_u = eps_both[:n], eps_both[n:]
        x0 = (1 + self.w) * x0_c - self.w * x0_u  # eq. 6, in x_0 form
        eps = (1 + self.w) * eps_c - self.w * eps_u
        if self.rescale > 0.0 or self.clip_x0:
            if self.rescale > 0.0:
                dims = tuple(range(1, x0.dim()))
                ratio = x0_c.std(dim=dims, keepdim=True) / x0.std(dim=dims, keepdim=True)
                x0 = self.rescale * (x0 * ratio) + (1 - self.rescale) * x0
            if self.clip_x0:
                x0 = x0.clamp(-1.0, 1.0)
            alpha, sigma = self.path.alpha_t(t, x_t), self.path.sigma_t(t, x_t)
            eps = eps_from_x0(x_t, x0, alpha, sigma)
        return x0, eps

"""An energy-based model p(x) = exp(-E(x)) / Z (the Boltzmann distribution; Tomczak ch. 6) trained
by contrastive divergence with short-run Langevin negatives from a replay buffer.

The gradient of the negative log-likelihood needs samples of the model itself, because
log Z depends on the parameters (Hinton 2002; Du & Mordatch 2019):

    grad_theta -log p(x) = grad_theta E(x) - E_{x' ~ p}[grad_theta E(x')]

so the loss E_data[E(x)] - E_samples[E(x')] has that gradient when x' ~ p. The x' come from a few
SGLD steps (langevin.py) started, for 95% of the chains, where earlier chains stopped (the replay
buffer of Du & Mordatch 2019; persistent chains, Tieleman 2008) and for 5% from fresh
uniform noise; a small penalty l2 (E(x)^2 + E(x')^2) keeps the energies near 0 (their regularizer).
With a Gaussian reference (``base_std``) the penalty applies to the network's part only, so far
from the data the reference's bowl always wins and no flat plateau traps the chains.
"""

from __future__ import annotations

import torch
from torch import nn

from difusion.ebm.langevin import Score, sgld
from difusion.nn.mlp import mlp  # SiLU: smooth, so grad_x of the energy is smooth


class EnergyMLP(nn.Module):
    """E_theta(x): flat vectors of ``dim`` numbers -> one energy each, (N,).

    With ``base_std`` s0 > 0 the energy includes a Gaussian reference, E(x) = f_theta(x) +
    |x|^2 / (2 s0^2), i.e. p(x) ~ exp(-f_theta(x)) N(x; 0, s0^2 I) (the reference distribution of
    Xie et al. 2016, "A Theory of Generative ConvNet"): far from the data, where the network
    is flat, the score still points back to it and Langevin chains started in noise return."""

    def __init__(self, dim: int, hidden: int, depth: int, base_std: float = 0.0):
        super().__init__()
        self.dim, self.base_std = dim, base_std
        self.net = mlp(dim, 1, hidden, depth)

    def forward(self, x: torch.Tensor, parts: bool = False):
        """E(x), (N,); with ``parts``, the network's f(x) and the reference's |x|^2 / (2 s0^2)."""
        flat = x.flatten(1)
        f = self.net(flat).squeeze(-1)
        base = (
            0.5 * flat.pow(2).sum(1) / self.base_std**2
            if self.base_std > 0
            else torch.zeros_like(f)
        )
        return (f, base) if parts else f + base


def energy_score(energy: nn.Module) -> Score:
    """grad_x log p(x) = -grad_x E(x) of an energy network, by autograd on x alone (the gradients
    of the parameters are left untouched)."""

    def score(x: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(energy(x).sum(), x)
        return -grad

    return score


class ReplayBuffer:
    """``size`` past chain ends (Du & Mordatch 2019), first filled with uniform noise on
    [-r, r]^D. :meth:`draw` restarts a share ``reinit`` of the chains from fresh noise."""

    def __init__(self, size: int, dim: int, noise_range: float, generator: torch.Generator):
        self.noise_range = noise_range
        self.points = self.noise(size, dim, generator)

    def noise(self, n: int, dim: int, generator: torch.Generator | None) -> torch.Tensor:
        return (torch.rand(n, dim, generator=generator) * 2 - 1) * self.noise_range

    def draw(
        self, n: int, reinit: float, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """n chain starts and their rows in the buffer: 1 - reinit of them from the buffer, the
        rest from fresh noise."""
        idx = torch.randint(len(self.points), (n,), generator=generator)
        x = self.points[idx].clone()
        fresh = torch.rand(n, generator=generator) < reinit
        x[fresh] = self.noise(int(fresh.sum()), x.shape[1], generator)
        return x, idx

    def push(self, x: torch.Tensor, idx: torch.Tensor) -> None:
        """Write the chains' ends back to the rows they came from."""
        self.points[idx] = x.detach().cpu()


def negatives(
    energy: nn.Module,
    buffer: ReplayBuffer,
    n: int,
    reinit: float,
    step: float,
    steps: int,
    generator: torch.Generator,
    device: torch.device,
) -> torch.Tensor:
    """x' ~ p_theta, approximately: ``steps`` SGLD steps on -grad E from the buffer's starts; the
    ends go back into the buffer."""
    x, idx = buffer.draw(n, reinit, generator)
    x = sgld(energy_score(energy), x.to(device), step, steps, generator).detach()
    buffer.push(x, idx)
    return x


def cd_loss(
    energy: nn.Module, x: torch.Tensor, x_neg: torch.Tensor, l2: float
) -> tuple[torch.Tensor, dict[str, float]]:
    """Contrastive divergence: E_data[E(x)] - E_samples[E(x')] + l2 (f(x)^2 + f(x')^2), whose
    gradient is the likelihood's (above) plus their regularizer, on the network's part f of the
    energy (all of it without a reference); logs both mean energies. One forward pass over data
    and samples together (DistributedDataParallel expects one per backward)."""
    f, base = energy(torch.cat([x, x_neg]), parts=True)
    f_pos, f_neg = f[: len(x)], f[len(x) :]
    e_pos, e_neg = f_pos + base[: len(x)], f_neg + base[len(x) :]
    loss = e_pos.mean() - e_neg.mean() + l2 * (f_pos.pow(2).mean() + f_neg.pow(2).mean())
    return loss, {"energy_data": float(e_pos.mean().detach()),
                  "energy_samples": float(e_neg.mean().detach())}  # fmt: skip

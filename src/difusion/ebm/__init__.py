"""Energy-based models and score matching (Tomczak, "Deep Generative Modeling", ch. 6): an energy
E(x) trained by contrastive divergence with short-run Langevin negatives from a replay buffer (Du &
Mordatch 2019), a noise-conditional score trained by denoising score matching and sampled by
annealed Langevin (Song & Ermon 2019), and the DDPM eps-network read as a score, -eps / sigma_t.
Trained by the one training loop as ``objective: ebm``; docs/energy-based-models.md walks through
them.

    from difusion.ebm import load_ebm, sample_ebm_run
    model = load_ebm("runs/ebm-toy2d")              # EMA weights, eval mode
    sample_ebm_run("runs/ebm-toy2d", 1000, seed=0)  # SGLD from noise, scatter plot and npz
"""

from __future__ import annotations

from difusion.ebm.ddpm_score import (
    data_scale_score,
    ddpm_langevin,
    eps_to_score,
    path_score,
    times_for_sigmas,
)
from difusion.ebm.energy import EnergyMLP, ReplayBuffer, cd_loss, energy_score
from difusion.ebm.langevin import annealed_langevin, geometric_sigmas, sgld
from difusion.ebm.run import eval_ebm_run, load_ebm, sample_ebm_run
from difusion.ebm.score import NoiseConditionalScore, dsm_loss

__all__ = [
    "EnergyMLP",
    "NoiseConditionalScore",
    "ReplayBuffer",
    "annealed_langevin",
    "cd_loss",
    "data_scale_score",
    "ddpm_langevin",
    "dsm_loss",
    "energy_score",
    "eps_to_score",
    "eval_ebm_run",
    "geometric_sigmas",
    "load_ebm",
    "path_score",
    "sample_ebm_run",
    "sgld",
    "times_for_sigmas",
]

# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 3. DDIM against DDPM, from the same noise
#
# Budget: this notebook samples the run of notebook 2 (`runs/notebooks/ddpm-digits`); if that
# folder is missing it first trains one, for the budget of `DIFUSION_NOTEBOOK_BUDGET`
# (`student`, the default: the preset's 1,500 steps, about a minute; `tiny`, what CI runs: a few
# dozen steps). The sampling itself takes seconds at `student` and less at `tiny`, which uses
# shorter grids.
#
# What you will do: start DDPM's ancestral sampler (Ho et al. Algorithm 2) and DDIM
# (Song et al. 2021, eq. 12) from the same x_T and watch what each does with it; check that DDIM
# with eta = 1 *is* DDPM with the variance beta~ on the same grid and the same noise, and that
# DDIM with eta = 0 is a deterministic map whose output settles as the number of steps grows.
# The page to read beside it: `docs/sampling.md`, the DDIM section.

# %%
import dataclasses
import os
import sys
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import torch

from difusion.config import load_config
from difusion.runs import load_run
from difusion.sampling.ddim import ddim_timesteps
from difusion.sampling.noise import PerImageNoise
from difusion.sampling.pipeline import draw_samples
from difusion.sampling.samplers import run_sampler
from difusion.training.loop import train
from difusion.viz.grid import make_grid

BUDGET = os.environ.get("DIFUSION_NOTEBOOK_BUDGET", "student")
assert BUDGET in ("student", "tiny"), (
    f"DIFUSION_NOTEBOOK_BUDGET must be student or tiny, not {BUDGET}"
)
# difusion's plotting module selects matplotlib's Agg backend (files only): draw here again,
# inline in Jupyter, in windows (where there is a display) when run as a script
shell = sys.modules["IPython"].get_ipython() if "IPython" in sys.modules else None
if shell is not None:
    shell.run_line_magic("matplotlib", "inline")
else:
    plt.switch_backend(matplotlib.rcParamsOrig["backend"])
TINY = BUDGET == "tiny"
RUN = Path("runs/notebooks/ddpm-digits")
if not (RUN / "checkpoint.safetensors").is_file():  # notebook 2 has not been run here
    steps = 60 if TINY else 1500
    cfg = load_config(
        "digits",
        [
            f"train.steps={steps}",
            f"train.threads={torch.get_num_threads()}",
            "train.sample_every=0",
        ],
    )
    train(cfg, RUN, overwrite=True, progress=False, final_samples=False)
run = load_run(RUN)
print(f"budget: {BUDGET}; the run: {run.run_dir}, {run.step} training steps")

# %% [markdown]
# ## The same x_T, two samplers, several grids
#
# Image i of every call below starts from seed i: the same x_T. DDPM then draws fresh noise at
# every step (the z of Algorithm 2); DDIM with eta = 0 draws none, so its sample is a function of
# x_T alone, the solution of an ODE, and it can take big steps.

# %%
N = 8
full = 50 if TINY else 1000
rows = {
    f"DDPM, {full} steps": run.settings(n=N, sampler="ddpm", steps=full),
    "DDPM, 20 steps": run.settings(n=N, sampler="ddpm", steps=20),
    f"DDIM eta=0, {full} steps": run.settings(n=N, sampler="ddim", steps=full, eta=0.0),
    "DDIM eta=0, 20 steps": run.settings(n=N, sampler="ddim", steps=20, eta=0.0),
    "DDIM eta=0, 5 steps": run.settings(n=N, sampler="ddim", steps=5, eta=0.0),
}
drawn = {name: draw_samples(run.model, s, progress=False).x for name, s in rows.items()}
fig, axes = plt.subplots(len(drawn), 1, figsize=(8, 1.3 * len(drawn)))
for ax, (name, x) in zip(axes, drawn.items(), strict=True):
    ax.imshow(make_grid(x, nrow=N, scale=4))
    ax.set_title(name, fontsize=9)
    ax.axis("off")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Check 1: DDIM with eta = 1 is DDPM with sigma^2 = beta~
#
# DDIM's eq. 16 with eta = 1 puts back the noise DDPM's posterior has, beta~ (here on a skip
# t -> s of the grid, the variance of q(x_s | x_t, x_0)). The two update rules are written
# differently (DDIM: alpha_s x0_hat + a direction pointing to x_t + noise; DDPM: the posterior mean
# + noise), but on the same grid, from the same x_T and with the same z at each step they must
# give the same images, to float rounding. The samplers are called directly here with one noise
# stream per image (`PerImageNoise`) so that both see exactly the same draws, and the network runs
# in float32.

# %%
# float32: the run samples in bfloat16 where the CPU has it, whose rounding would let the two
# chains drift apart over many steps; the identity is exact, so check it at full precision
denoiser = dataclasses.replace(run.model, autocast_dtype=None).denoiser()
ts = ddim_timesteps(run.path.T, 10 if TINY else 100)
seeds = list(range(N))


def sample(name, **kw):
    noise = PerImageNoise(seeds)
    x_T = noise.randn((N, *run.shape))
    with torch.no_grad():
        return run_sampler(name, denoiser, run.path, x_T, ts, noise=noise.randn, **kw)


ddim_1 = sample("ddim", eta=1.0)
ddpm_tilde = sample("ddpm", variance="beta_tilde")
ddpm_beta = sample("ddpm", variance="beta")
gap = (ddim_1 - ddpm_tilde).abs().max().item()
print(f"{len(ts) - 1} steps: max |DDIM(eta=1) - DDPM(beta_tilde)| = {gap:.2e}")
print(f"            max |DDIM(eta=1) - DDPM(beta)|       = {(ddim_1 - ddpm_beta).abs().max():.2e}")
assert gap < 1e-4

# %% [markdown]
# The second line is the control: DDPM with the other fixed variance, beta, draws the same z but
# scales it differently, and its images are visibly different numbers.
#
# ## Check 2: DDIM with eta = 0 converges as the grid refines
#
# With no noise, DDIM is a one-step method for an ODE (its Euler method in the right coordinates;
# `docs/flow.md`). Its output should stop changing as the steps grow: the distance to the sample
# with the most steps shrinks.

# %%
ref_steps = 100 if TINY else 1000
ref = draw_samples(run.model, run.settings(n=N, sampler="ddim", steps=ref_steps), progress=False).x
dist = {}
for k in (5, 10, 20) if TINY else (5, 10, 20, 50, 100):
    x = draw_samples(run.model, run.settings(n=N, sampler="ddim", steps=k), progress=False).x
    dist[k] = (x - ref).pow(2).mean().sqrt().item()
    print(f"DDIM {k:3d} steps: RMS distance to {ref_steps} steps = {dist[k]:.4f}")
assert dist[20] < dist[5]

# %% [markdown]
# ## To try
#
# - Replace `"ddim"` by `"dpmpp-2m"` or `"heun"` in the settings: the other deterministic solvers
#   of `docs/sampling.md`, on the same x_T.
# - Set `eta=0.5` in a DDIM row: between the ODE and the ancestral sampler.

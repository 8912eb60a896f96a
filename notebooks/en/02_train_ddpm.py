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
# # 2. Training a DDPM on the digits in a minute
#
# Budget: `DIFUSION_NOTEBOOK_BUDGET=student` (the default) trains the `digits` preset for its full
# 1,500 steps, about a minute on a laptop CPU, and samples with all 1,000 ancestral steps;
# `DIFUSION_NOTEBOOK_BUDGET=tiny` (what CI runs) trains for a few dozen steps and samples with
# 25, enough to check that the notebook runs and that the network has started to learn.
#
# What you will do: train the lab's DDPM (Ho et al. 2020, Algorithm 1: L_simple, the eps target,
# a small U-Net, AdamW and an EMA of the weights) with the same function `difusion train digits`
# calls, read its loss curve, check that it beats the network it started from on held-out digits,
# and draw samples with Algorithm 2.
#
# The run is written to `runs/notebooks/ddpm-digits` (notebook 3 samples it again). Pages to read
# beside it: `docs/ddpm.md`, sections 5 to 8.

# %%
import os
import sys
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import torch

from difusion.build import build_network
from difusion.config import load_config
from difusion.data import load_dataset
from difusion.diffusion.losses import simple_loss
from difusion.runs import load_run
from difusion.sampling.pipeline import draw_samples
from difusion.training.loop import train
from difusion.viz.grid import make_grid
from difusion.viz.plots import read_metrics

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
TRAIN_STEPS = 60 if BUDGET == "tiny" else 1500
SAMPLE_STEPS = 25 if BUDGET == "tiny" else 1000
RUN = Path("runs/notebooks/ddpm-digits")
print(
    f"budget: {BUDGET}: {TRAIN_STEPS} training steps, {SAMPLE_STEPS} sampling steps, "
    f"{torch.get_num_threads()} thread(s)"
)

# %% [markdown]
# ## The config
#
# `load_config` reads a preset (`src/difusion/presets/digits.yaml`: a U-Net with 32 base channels,
# the cosine schedule with T = 1000, batch 64) over the defaults of `src/difusion/config.py`; each
# override is `section.key=value`, exactly as on the command line.

# %%
cfg = load_config(
    "digits",
    [
        f"train.steps={TRAIN_STEPS}",
        f"train.threads={torch.get_num_threads()}",
        "train.log_every=10",
        "train.sample_every=0",  # no preview grids: this notebook draws its own samples
    ],
)
print(cfg.model)
print(cfg.diffusion.schedule, cfg.diffusion.T, cfg.diffusion.prediction)

# %% [markdown]
# ## Training
#
# `train` runs Algorithm 1 until `train.steps`, writes the checkpoint, the config and
# `metrics.jsonl` into the run folder, and returns a summary. `overwrite=True` lets you run the
# cell again; `final_samples=False` skips the pictures `difusion train` makes at the end, since we
# make ours below.

# %%
result = train(cfg, RUN, overwrite=True, progress=False, final_samples=False)
print(
    f"{result.step} steps in {result.seconds:.1f} s, {result.images_per_second:.0f} images/s, "
    f"last loss {result.final_loss:.3f}"
)

# %%
rows = read_metrics(RUN / "metrics.jsonl")
plt.figure(figsize=(5, 3))
plt.plot([r["step"] for r in rows], [r["loss"] for r in rows])
plt.xlabel("step")
plt.ylabel("L_simple (batch)")
plt.yscale("log")
plt.show()

# %% [markdown]
# ## Did it learn? L_simple on held-out digits
#
# The U-Net's last layer starts at zero, so before training it predicts eps = 0 and its L_simple is
# E[eps^2] = 1. We score the trained EMA weights and a fresh network on the 297 test digits with
# the same t and the same eps for both (one generator seed), so the difference is the training's.

# %%
test = load_dataset("digits", split="test").data
run = load_run(RUN)
fresh = build_network(cfg, run.shape, None).eval()


@torch.no_grad()
def test_loss(network) -> float:
    g = torch.Generator().manual_seed(0)
    losses = [simple_loss(network, run.path, test, generator=g) for _ in range(4)]
    return float(torch.stack(losses).mean())


before, after = test_loss(fresh), test_loss(run.network)
print(f"test L_simple: fresh network {before:.3f}, trained {after:.3f}")
assert after < 0.9 * before

# %% [markdown]
# ## Samples (Algorithm 2)
#
# `draw_samples` starts image i from seed i, so the same call gives the same pictures. With
# `steps` below T it walks a respaced grid of times (Nichol & Dhariwal), each step using the
# posterior of notebook 1 between two of them.

# %%
samples = draw_samples(run.model, run.settings(n=32, seed=0, steps=SAMPLE_STEPS), progress=False)
print(samples.x.shape, float(samples.x.min()), float(samples.x.max()))
plt.figure(figsize=(6, 3))
plt.imshow(make_grid(samples.x, nrow=8, scale=4))
plt.axis("off")
plt.title(f"{result.step} training steps, {SAMPLE_STEPS} sampling steps")
plt.show()

# %% [markdown]
# Beside them, real digits from the test split:

# %%
plt.figure(figsize=(6, 3))
plt.imshow(make_grid(test[:32], nrow=8, scale=4))
plt.axis("off")
plt.show()

# %% [markdown]
# ## To try
#
# - `difusion train digits diffusion.prediction=v` from a terminal, or the same override in the
#   config cell: another target, the same sampler.
# - Sample with `variance="beta_tilde"` in `run.settings(...)`: the other fixed variance of Ho et al.
# - Halve `TRAIN_STEPS` and look at the samples again.

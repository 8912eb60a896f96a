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
# # 5. A variational autoencoder on the digits
#
# Budget: `DIFUSION_NOTEBOOK_BUDGET=student` (the default) trains the `vae-digits` preset for its
# 1,500 steps, under a minute on a laptop CPU; `tiny` (what CI runs) trains for a couple of hundred
# steps, enough for reconstructions that beat the average digit.
#
# What you will do: train a VAE (Kingma & Welling 2014: an encoder q(z|x) = N(mu(x), sigma(x)^2),
# the reparameterization z = mu + sigma eps, a Gaussian decoder and the analytic KL to N(0, I))
# with a 2-D code, so that the code space can be drawn; look at reconstructions, at samples decoded
# from the prior, and at where each class of digit lands in the code. The page to read beside it:
# `docs/autoencoders.md`, the VAE section.

# %%
import os
import sys
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import torch

from difusion.autoencoders import load_autoencoder
from difusion.autoencoders.measures import PCA, mse_per_image
from difusion.config import load_config
from difusion.data import load_dataset
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
TRAIN_STEPS = 200 if BUDGET == "tiny" else 1500
RUN = Path("runs/notebooks/vae-digits")
print(f"budget: {BUDGET}: {TRAIN_STEPS} training steps, {torch.get_num_threads()} thread(s)")

# %% [markdown]
# ## Training
#
# The preset (`src/difusion/presets/vae-digits.yaml`) says `objective: autoencoder` with
# `autoencoder.kind=vae` and `code_size=2`; the training loop is the same one that trains the
# diffusion models. `final_samples=False` skips the measures and pictures `difusion train` writes
# at the end (FID, IWAE): we make our own below.

# %%
cfg = load_config(
    "vae-digits", [f"train.steps={TRAIN_STEPS}", f"train.threads={torch.get_num_threads()}"]
)
print(cfg.autoencoder.kind, cfg.autoencoder.code_size, cfg.autoencoder.sigma)
result = train(cfg, RUN, overwrite=True, progress=False, final_samples=False)
print(f"{result.step} steps in {result.seconds:.1f} s, last loss {result.final_loss:.3f}")
vae = load_autoencoder(RUN)  # the EMA weights, in eval mode

# %% [markdown]
# ## Reconstructions
#
# `encode` returns the posterior mean mu(x); `decode` the decoder's mean image. Top row: test
# digits; bottom row: their reconstructions through a code of two numbers.

# %%
test = load_dataset("digits", split="test")
x, labels = test.data, test.labels
with torch.no_grad():
    x_hat = vae.decode(vae.encode(x))
plt.figure(figsize=(8, 2.2))
plt.imshow(make_grid(torch.cat([x[:12], x_hat[:12]]), nrow=12, scale=4))
plt.axis("off")
plt.show()

# %% [markdown]
# ## Check: better than the average digit
#
# The best reconstruction that ignores its input is the mean training image. A VAE whose code
# carries information about x must beat it. PCA with two components is the linear reconstruction
# from a code of the same size: the VAE's nonlinear decoder can do better than it, but a short run
# may not, so that figure is printed as a reference, not checked.

# %%
train_x = load_dataset("digits").data
mse_vae = mse_per_image(x_hat, x).mean().item()
mse_mean = mse_per_image(train_x.mean(0, keepdim=True).expand_as(x), x).mean().item()
mse_pca = mse_per_image(PCA.fit(train_x, 2).reconstruct(x).float().clamp(-1, 1), x).mean().item()
print(
    f"test MSE: mean image {mse_mean:.4f}, VAE {mse_vae:.4f}, PCA with 2 components {mse_pca:.4f}"
)
assert mse_vae < 0.9 * mse_mean

# %% [markdown]
# ## Samples from the prior
#
# A VAE is a generative model: decode z ~ N(0, I).

# %%
z = vae.sample_prior(32, generator=torch.Generator().manual_seed(0))
plt.figure(figsize=(6, 3))
plt.imshow(make_grid(vae.decode(z), nrow=8, scale=4))
plt.axis("off")
plt.show()

# %% [markdown]
# ## The code space
#
# Each test digit's mu(x), coloured by its class, over the prior's circle of radius 2; and the
# decoder's image at each point of a grid of codes.

# %%
with torch.no_grad():
    mu = vae.encode(x)
grid = torch.linspace(-2, 2, 9)
codes = torch.cartesian_prod(grid, grid).flip(1)  # rows: z_2 from -2 to 2; columns: z_1
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.5))
points = ax1.scatter(mu[:, 0], mu[:, 1], c=labels, cmap="tab10", s=8)
ax1.add_patch(plt.Circle((0, 0), 2, fill=False, ls="--"))
ax1.set_aspect("equal")
fig.colorbar(points, ax=ax1, label="digit")
ax2.imshow(make_grid(vae.decode(codes), nrow=9, scale=3))
ax2.axis("off")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## To try
#
# - `autoencoder.beta=4` in the overrides: a beta-VAE, a rounder code and blurrier digits.
# - `autoencoder.kind=ae`: a plain autoencoder, and see what its prior samples look like.

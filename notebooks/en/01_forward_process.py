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
# # 1. The forward process and its posterior, on the digits
#
# Budget: this notebook trains nothing. It reads `DIFUSION_NOTEBOOK_BUDGET` like the others:
# `student` (the default) draws more Monte Carlo samples for its checks, `tiny` (what CI runs)
# draws fewer. Either way it takes seconds.
#
# What you will do: push scikit-learn's 8x8 digits through DDPM's forward process
# q(x_t | x_0) (Ho et al. 2020, eqs. 2 and 4), watch the two usual schedules remove the signal,
# and check two closed forms with your own samples:
#
# 1. t small steps of eq. 2 compose into the one Gaussian of eq. 4;
# 2. the posterior q(x_{t-1} | x_t, x_0) of eqs. 6-7 is what Bayes' rule gives, measured by
#    drawing (x_{t-1}, x_t) pairs and looking at what x_t leaves unexplained in x_{t-1}.
#
# The page to read beside it: `docs/ddpm.md`, sections 1 to 3.

# %%
import os
import sys

import matplotlib
import matplotlib.pyplot as plt
import torch

from difusion.data import load_dataset
from difusion.diffusion.path import DDPMPath

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
N_MC = 2_000 if BUDGET == "tiny" else 20_000  # Monte Carlo draws per check
torch.manual_seed(0)
print(f"budget: {BUDGET}, {N_MC} Monte Carlo draws, {torch.get_num_threads()} thread(s)")

# %% [markdown]
# ## The data and the two schedules
#
# The digits are 8x8 images with pixels mapped to [-1, 1]. The lab's training split is the first
# 1,500 images. `DDPMPath` holds the tables of a schedule indexed by the paper's t = 0..T, so
# `path.alpha_bar[t]` is the paper's alpha-bar_t and index 0 is the clean image.

# %%
digits = load_dataset("digits").data  # (1500, 1, 8, 8) in [-1, 1]
linear = DDPMPath.from_schedule("linear", 1000)
cosine = DDPMPath.from_schedule("cosine", 1000)
print(digits.shape, float(digits.min()), float(digits.max()))
print(
    "alpha_bar_500: linear",
    round(float(linear.alpha_bar[500]), 4),
    "cosine",
    round(float(cosine.alpha_bar[500]), 4),
)

# %% [markdown]
# ## x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps
#
# One image, one fixed eps, several t: `q_sample` is eq. 4 in its reparameterized form. Under the
# linear schedule the digit is gone long before t = 1000; the cosine schedule keeps it longer.

# %%
x0 = digits[:1]
eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(1))
times = [0, 50, 100, 250, 500, 750, 1000]
fig, axes = plt.subplots(2, len(times), figsize=(1.6 * len(times), 3.6))
for row, (name, path) in enumerate([("linear", linear), ("cosine", cosine)]):
    for col, t in enumerate(times):
        x_t = path.q_sample(x0, t, eps)
        axes[row, col].imshow(x_t[0, 0], cmap="gray", vmin=-1, vmax=1)
        axes[row, col].set_title(f"{name} t={t}", fontsize=8)
        axes[row, col].axis("off")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Check 1: t steps of eq. 2 are one step of eq. 4
#
# Start N copies of the same digit, apply `q_step` (eq. 2: x_t = sqrt(1 - beta_t) x_{t-1} +
# sqrt(beta_t) eps) t times with fresh noise each time, and compare the mean and variance of what
# comes out with eq. 4's sqrt(alpha_bar_t) x_0 and 1 - alpha_bar_t. The tolerance is five
# standard errors of the Monte Carlo estimate, so the check fails if the composition is wrong,
# not because of bad luck.

# %%
t_check = 200
g = torch.Generator().manual_seed(2)
x = x0.double().repeat(N_MC, 1, 1, 1)
for t in range(1, t_check + 1):
    x = linear.q_step(x, t, torch.randn(x.shape, generator=g, dtype=torch.float64))
ab = linear.alpha_bar[t_check]
mean_err = (x.mean(0) - ab.sqrt() * x0[0].double()).abs().max()
var_ratio = x.var(0) / (1 - ab)
print(
    f"t = {t_check}: max |mean - sqrt(alpha_bar) x0| = {mean_err:.4f}, "
    f"variance / (1 - alpha_bar) in [{var_ratio.min():.3f}, {var_ratio.max():.3f}]"
)
assert mean_err < 5 * ((1 - ab) / N_MC).sqrt()
assert (var_ratio - 1).abs().max() < 5 * (2 / N_MC) ** 0.5  # the std error of a variance ratio

# %% [markdown]
# ## The posterior q(x_{t-1} | x_t, x_0) (eqs. 6-7)
#
# Knowing x_0 as well as x_t, the step back is Gaussian with mean
# mu~_t = sqrt(alpha_bar_{t-1}) beta_t / (1 - alpha_bar_t) x_0 + sqrt(alpha_t) (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) x_t
# and variance beta~_t = (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) beta_t. The lab writes it once
# for every Gaussian path (`GaussianPath.posterior`); here it is in Ho et al.'s own names, and the
# two must agree to float64 rounding.


# %%
def posterior_eq7(path, x0, x_t, t):
    """Ho et al. eq. 7 written with the paper's alpha_t = 1 - beta_t and alpha_bar_t."""
    beta, alpha = path.beta[t], path.alpha_table[t]
    ab, ab_prev = path.alpha_bar[t], path.alpha_bar[t - 1]
    mean = ab_prev.sqrt() * beta / (1 - ab) * x0 + alpha.sqrt() * (1 - ab_prev) / (1 - ab) * x_t
    return mean, (1 - ab_prev) / (1 - ab) * beta


x_t = linear.q_sample(x0.double(), 300, eps.double())
for t in (2, 37, 300, 1000):
    mean_lab, var_lab, _ = linear.posterior(x0.double(), x_t, t, t - 1)
    mean_ho, var_ho = posterior_eq7(linear, x0.double(), x_t, t)
    assert torch.allclose(mean_lab, mean_ho, atol=1e-12)
    assert torch.allclose(var_lab.flatten()[0], var_ho, rtol=1e-10)
    print(f"t = {t}: beta_tilde = {float(var_ho):.3e}, beta = {float(linear.beta[t]):.3e}")

# %% [markdown]
# ## Check 2: Bayes' rule, measured
#
# Draw x_{t-1} from q(x_{t-1} | x_0) and then x_t from q(x_t | x_{t-1}). If eqs. 6-7 are right, the
# residual r = x_{t-1} - mu~_t(x_t, x_0) has mean 0, variance beta~_t, and no correlation with x_t:
# x_t explains all of x_{t-1} that it can, and what is left is the posterior's own noise.

# %%
t = 20
g = torch.Generator().manual_seed(3)
x0_many = x0.double().repeat(N_MC, 1, 1, 1)
x_prev = linear.q_sample(
    x0_many, t - 1, torch.randn(x0_many.shape, generator=g, dtype=torch.float64)
)
x_t = linear.q_step(x_prev, t, torch.randn(x0_many.shape, generator=g, dtype=torch.float64))
mean, var_tilde, _ = linear.posterior(x0_many, x_t, t, t - 1)
r = (x_prev - mean).flatten()
corr = torch.corrcoef(torch.stack([r, (x_t - x_t.mean(0)).flatten()]))[0, 1]
ratio = r.var() / var_tilde.flatten()[0]
print(
    f"t = {t}: residual mean {r.mean():.2e}, variance / beta_tilde {ratio:.3f}, corr with x_t {corr:.3f}"
)
n = r.numel()
assert abs(float(ratio) - 1) < 5 * (2 / n) ** 0.5
assert abs(float(corr)) < 5 / n**0.5

# %% [markdown]
# ## The posterior's coefficients along t
#
# How much of the step back comes from x_0 and how much from x_t, and how beta~_t compares with
# beta_t (the two fixed variances of Ho et al.'s reverse process): beta~_t is much smaller than
# beta_t only in the first steps.

# %%
ts = torch.arange(2, 1001)
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.2))
for name, path in [("linear", linear), ("cosine", cosine)]:
    ab, ab_prev = path.alpha_bar[ts], path.alpha_bar[ts - 1]
    ax1.plot(ts, ab_prev.sqrt() * path.beta[ts] / (1 - ab), label=f"{name}: coefficient of x_0")
    ax1.plot(
        ts,
        path.alpha_table[ts].sqrt() * (1 - ab_prev) / (1 - ab),
        "--",
        label=f"{name}: coefficient of x_t",
    )
    ax2.plot(ts, path.beta_tilde[ts] / path.beta[ts], label=name)
ax1.set_xscale("log")
ax1.set_xlabel("t")
ax1.legend(fontsize=7)
ax2.set_xscale("log")
ax2.set_xlabel("t")
ax2.set_ylabel("beta_tilde / beta")
ax2.legend()
plt.tight_layout()
plt.show()

# %% [markdown]
# ## To try
#
# - Change `t_check` or the schedule in check 1: the check holds for any t and any schedule.
# - Put `posterior_eq7` in check 2 in place of `linear.posterior` and break one coefficient on
#   purpose: the residual's variance or its correlation with x_t gives it away.

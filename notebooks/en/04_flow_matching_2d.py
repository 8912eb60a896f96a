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
# # 4. Flow matching in two dimensions
#
# Budget: `DIFUSION_NOTEBOOK_BUDGET=student` (the default) trains for 3,000 steps, the `fm-toy2d`
# preset's, which takes seconds to a few tens of seconds on a laptop CPU; `tiny` (what CI runs)
# trains for a few hundred steps, enough for the moons to appear.
#
# What you will do: write the rectified flow's training loop yourself in a few lines (the path
# x_t = (1 - t) x_0 + t eps, the target velocity eps - x_0; Liu et al. 2023, Lipman et al. 2023),
# integrate the learned ODE from noise (t = 1) to data (t = 0) with Euler steps, and score the
# samples against held-out points. First, a check with no network: Euler on the *exact* velocity
# of Gaussian data lands on the exact solution, with an error that halves when the steps double.
# The page to read beside it: `docs/flow.md`.

# %%
import os
import sys

import matplotlib
import matplotlib.pyplot as plt
import torch

from difusion.data import load_dataset
from difusion.diffusion.flow import FlowPath, GaussianFlow
from difusion.metrics.two_d import sliced_wasserstein
from difusion.nn.mlp import MLPDenoiser
from difusion.training.flow_objective import flow_matching_loss

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
TRAIN_STEPS = 400 if BUDGET == "tiny" else 3000
torch.manual_seed(0)
print(f"budget: {BUDGET}: {TRAIN_STEPS} training steps, {torch.get_num_threads()} thread(s)")

# %% [markdown]
# ## Euler's method, checked on a flow we know
#
# For data N(mu, s^2 I) the best velocity field of the rectified path is known in closed form and
# so is its ODE solution (`GaussianFlow`, `src/difusion/diffusion/flow.py`). Going from noise at
# t = 1 to t = 0 in K Euler steps, x <- x - (1/K) v(x, t), should miss that solution by an amount
# proportional to 1/K: Euler is a first-order method.

# %%
path = FlowPath("rectified")
exact = GaussianFlow(path, mu=torch.tensor([2.0, -1.0]), s=0.3)
x1 = torch.randn(1000, 2, dtype=torch.float64)


def euler(velocity, x, steps):
    """x at t = 1 -> x at t = 0 in ``steps`` equal Euler steps of dx/dt = v(x, t)."""
    for i in range(steps):
        t = 1.0 - i / steps
        x = x - velocity(x, t) / steps
    return x


target = exact.flow_map(x1, 0.0)
errors = {
    k: (euler(exact.velocity, x1, k) - target).norm(dim=1).mean().item() for k in (4, 8, 16, 32)
}
for k, e in errors.items():
    print(f"{k:2d} Euler steps: mean error {e:.5f}")
for k in (4, 8, 16):
    assert 0.4 < errors[2 * k] / errors[k] < 0.6  # first order: doubling K halves the error

# %% [markdown]
# ## The data: two moons
#
# 8,000 training points and an independent held-out sample from the same distribution
# (`load_dataset("toy2d", split="test")` draws another random stream).

# %%
data = load_dataset("toy2d", distribution="moons", n=8000).data
held_out = load_dataset("toy2d", distribution="moons", n=2000, split="test").data
print(data.shape, held_out.shape)

# %% [markdown]
# ## Training: regress the network on eps - x_0
#
# The whole of flow matching's training is the loop below: draw data, noise and t, and regress the
# network's output at x_t on the velocity of the straight path between them. The lab's
# `flow_matching_loss` is those lines (x_t from `path.q_sample`, the target from `path.velocity`);
# the network is the MLP of the `toy2d` presets, which sees t scaled by `path.time_scale`.

# %%
net = MLPDenoiser(dim=2, hidden=128, depth=3)
opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
g = torch.Generator().manual_seed(0)
losses = []
for _ in range(TRAIN_STEPS):
    x0 = data[torch.randint(len(data), (256,), generator=g)]
    eps = torch.randn(x0.shape, generator=g)
    t = torch.rand(len(x0), generator=g)
    loss = flow_matching_loss(net, path, x0, eps, t)  # mean ||v_theta(x_t, t) - (eps - x_0)||^2
    opt.zero_grad()
    loss.backward()
    opt.step()
    losses.append(loss.item())
print(f"loss: first {losses[0]:.3f}, mean of the last 50 {sum(losses[-50:]) / 50:.3f}")

# %% [markdown]
# ## Sampling: Euler from noise to data
#
# The same `euler` as above, now with the network as the velocity.

# %%
net.eval()


@torch.no_grad()
def learned_velocity(x, t):
    return net(x, torch.full((len(x),), path.time_scale * t))


noise = torch.randn(2000, 2, generator=torch.Generator().manual_seed(1))
samples = {k: euler(learned_velocity, noise, k) for k in (1, 4, 20)}
fig, axes = plt.subplots(1, 4, figsize=(13, 3.2), sharex=True, sharey=True)
axes[0].scatter(*held_out.T, s=2)
axes[0].set_title("held-out data")
for ax, (k, x) in zip(axes[1:], samples.items(), strict=True):
    ax.scatter(*x.T, s=2, color="C1")
    ax.set_title(f"{k} Euler step(s)")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Scoring the samples
#
# The sliced Wasserstein distance (`difusion.metrics.two_d`) compares two point clouds through
# many 1-D projections. The noise the sampler starts from is the baseline: the samples must be far
# closer to the held-out moons than that. One Euler step only gets the straight-line average,
# which is why it blurs the moons; more steps follow the curved flow.

# %%
base = sliced_wasserstein(noise, held_out)
scores = {k: sliced_wasserstein(x, held_out) for k, x in samples.items()}
print(f"noise: {base:.3f}")
for k, s in scores.items():
    print(f"{k:2d} Euler step(s): {s:.3f}")
assert scores[20] < 0.5 * base

# %% [markdown]
# ## To try
#
# - Replace Euler by Heun (two calls per step) and compare the scores at equal network calls.
# - `difusion train fm-toy2d` trains the same model with the lab's loop (EMA, warm-up) and
#   `difusion sample RUN --sampler fm-euler --steps 4` samples it.

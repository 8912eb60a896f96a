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
# # 4. *Flow matching* en dos dimensiones
#
# Presupuesto: `DIFUSION_NOTEBOOK_BUDGET=student` (el valor por defecto) entrena 3000 pasos, los de
# la configuración `fm-toy2d`, que llevan de unos segundos a unas decenas de segundos en la CPU de un
# portátil; `tiny` (lo que ejecuta la CI) entrena unos cientos de pasos, suficientes para que aparezcan
# las lunas.
#
# Qué vas a hacer: escribir tú mismo en unas pocas líneas el bucle de entrenamiento del flujo
# rectificado (el camino x_t = (1 - t) x_0 + t eps, la velocidad objetivo eps - x_0; Liu et al. 2023,
# Lipman et al. 2023), integrar la EDO aprendida desde el ruido (t = 1) hasta los datos (t = 0) con
# pasos de Euler, y puntuar las muestras frente a puntos apartados. Antes, una comprobación sin red:
# Euler sobre la velocidad *exacta* de unos datos gaussianos llega a la solución exacta, con un error
# que se reduce a la mitad cuando se duplican los pasos. Para leer al lado: `docs/es/flujos.md`.

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
# ## El método de Euler, comprobado sobre un flujo conocido
#
# Para datos N(mu, s^2 I), el mejor campo de velocidades del camino rectificado se conoce en forma
# cerrada, y también la solución de su EDO (`GaussianFlow`, `src/difusion/diffusion/flow.py`). Al ir
# del ruido en t = 1 a t = 0 en K pasos de Euler, x <- x - (1/K) v(x, t), el error respecto a esa
# solución debería ser proporcional a 1/K: Euler es un método de primer orden.

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
# ## Los datos: dos lunas
#
# 8000 puntos de entrenamiento y una muestra apartada e independiente de la misma distribución
# (`load_dataset("toy2d", split="test")` usa otro generador aleatorio).

# %%
data = load_dataset("toy2d", distribution="moons", n=8000).data
held_out = load_dataset("toy2d", distribution="moons", n=2000, split="test").data
print(data.shape, held_out.shape)

# %% [markdown]
# ## El entrenamiento: regresión de la red sobre eps - x_0
#
# Todo el entrenamiento del *flow matching* es el bucle de abajo: sacar datos, ruido y t, y ajustar
# la salida de la red en x_t a la velocidad del camino recto entre ellos. La `flow_matching_loss` del
# laboratorio son esas líneas (x_t con `path.q_sample`, el objetivo con `path.velocity`); la red es el
# MLP de las configuraciones `toy2d`, que recibe t escalado por `path.time_scale`.

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
# ## El muestreo: Euler desde el ruido hasta los datos
#
# La misma `euler` de arriba, ahora con la red como velocidad.

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
# ## Puntuar las muestras
#
# La distancia de Wasserstein por cortes (`difusion.metrics.two_d`) compara dos nubes de puntos a
# través de muchas proyecciones en una dimensión. El ruido del que parte el muestreador es la
# referencia: las muestras tienen que quedar mucho más cerca de las lunas apartadas que él. Un solo
# paso de Euler solo llega a la media en línea recta, y por eso difumina las lunas; más pasos siguen
# el flujo curvo.

# %%
base = sliced_wasserstein(noise, held_out)
scores = {k: sliced_wasserstein(x, held_out) for k, x in samples.items()}
print(f"noise: {base:.3f}")
for k, s in scores.items():
    print(f"{k:2d} Euler step(s): {s:.3f}")
assert scores[20] < 0.5 * base

# %% [markdown]
# ## Para probar
#
# - Cambia Euler por Heun (dos llamadas por paso) y compara las puntuaciones con el mismo número de
#   evaluaciones de la red.
# - `difusion train fm-toy2d` entrena el mismo modelo con el bucle del laboratorio (media móvil
#   exponencial, calentamiento) y `difusion sample RUN --sampler fm-euler --steps 4` lo muestrea.

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
# # 3. DDIM frente a DDPM, desde el mismo ruido
#
# Presupuesto: este cuaderno muestrea la ejecución del cuaderno 2 (`runs/notebooks/ddpm-digits`); si
# esa carpeta no existe, antes entrena una con el presupuesto de `DIFUSION_NOTEBOOK_BUDGET`
# (`student`, el valor por defecto: los 1500 pasos de la configuración, cerca de un minuto; `tiny`,
# lo que ejecuta la CI: unas decenas de pasos). El muestreo en sí tarda segundos con `student` y menos
# con `tiny`, que usa mallas más cortas.
#
# Qué vas a hacer: arrancar el muestreador ancestral del DDPM (Ho et al., algoritmo 2) y el DDIM
# (Song et al. 2021, ecuación 12) desde el mismo x_T y ver qué hace cada uno con él; comprobar que el
# DDIM con eta = 1 *es* el DDPM con la varianza beta~ sobre la misma malla y con el mismo ruido, y que
# el DDIM con eta = 0 es una aplicación determinista cuyo resultado se estabiliza al crecer el número
# de pasos. Para leer al lado: `docs/sampling.md`, la sección del DDIM, y el DDIM en
# `docs/es/ddpm.md`.

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
# ## El mismo x_T, dos muestreadores, varias mallas
#
# La imagen i de cada llamada empieza con la semilla i: el mismo x_T. El DDPM saca después ruido nuevo
# en cada paso (la z del algoritmo 2); el DDIM con eta = 0 no saca ninguno, así que su muestra es
# función solo de x_T, la solución de una EDO, y puede dar pasos grandes.

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
# ## Comprobación 1: el DDIM con eta = 1 es el DDPM con sigma^2 = beta~
#
# La ecuación 16 del DDIM con eta = 1 devuelve el ruido que tiene la posterior del DDPM, beta~ (aquí
# en un salto t -> s de la malla, la varianza de q(x_s | x_t, x_0)). Las dos reglas se escriben de
# forma distinta (DDIM: alpha_s por x0 estimado, más una dirección que apunta a x_t, más ruido; DDPM:
# la media de la posterior más ruido), pero sobre la misma malla, desde el mismo x_T y con la misma z
# en cada paso tienen que dar las mismas imágenes, salvo redondeo. Aquí se llama directamente a los
# muestreadores con un generador de ruido por imagen (`PerImageNoise`) para que los dos vean
# exactamente los mismos valores, y la red se evalúa en float32.

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
# La segunda línea es el control: el DDPM con la otra varianza fija, beta, saca la misma z pero la
# escala de otra manera, y sus imágenes son números claramente distintos.
#
# ## Comprobación 2: el DDIM con eta = 0 converge al refinar la malla
#
# Sin ruido, el DDIM es un método de un paso para una EDO (su método de Euler en las coordenadas
# adecuadas; `docs/es/flujos.md`). Su resultado debería dejar de cambiar al aumentar los pasos: la
# distancia a la muestra con más pasos se reduce.

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
# ## Para probar
#
# - Cambia `"ddim"` por `"dpmpp-2m"` o `"heun"` en la configuración del muestreo: los otros
#   integradores deterministas de `docs/sampling.md`, desde el mismo x_T.
# - Pon `eta=0.5` en una fila del DDIM: entre la EDO y el muestreador ancestral.

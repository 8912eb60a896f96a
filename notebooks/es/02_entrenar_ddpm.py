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
# # 2. Entrenar un DDPM sobre los dígitos en un minuto
#
# Presupuesto: `DIFUSION_NOTEBOOK_BUDGET=student` (el valor por defecto) entrena la configuración
# `digits` sus 1500 pasos completos, cerca de un minuto en la CPU de un portátil, y muestrea con los
# 1000 pasos ancestrales; `DIFUSION_NOTEBOOK_BUDGET=tiny` (lo que ejecuta la CI) entrena unas
# decenas de pasos y muestrea con 25, lo justo para comprobar que el cuaderno funciona y que la red
# ha empezado a aprender.
#
# Qué vas a hacer: entrenar el DDPM del laboratorio (Ho et al. 2020, algoritmo 1: L_simple, el ruido
# como objetivo, una U-Net pequeña, AdamW y una media móvil exponencial de los pesos) con la misma
# función a la que llama `difusion train digits`, leer su curva de aprendizaje, comprobar que mejora
# a la red de partida sobre dígitos que no ha visto, y sacar muestras con el algoritmo 2.
#
# La ejecución se escribe en `runs/notebooks/ddpm-digits` (el cuaderno 3 la vuelve a muestrear).
# Para leer al lado: `docs/es/ddpm.md` o `docs/ddpm.md`, secciones 5 a 8.

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
# ## La configuración
#
# `load_config` lee una configuración predefinida (`src/difusion/presets/digits.yaml`: una U-Net con
# 32 canales de base, la programación de coseno con T = 1000, lotes de 64) sobre los valores por
# defecto de `src/difusion/config.py`; cada cambio es `sección.clave=valor`, igual que en la línea de
# órdenes.

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
# ## El entrenamiento
#
# `train` ejecuta el algoritmo 1 hasta `train.steps`, escribe el punto de control, la configuración y
# `metrics.jsonl` en la carpeta de la ejecución, y devuelve un resumen. `overwrite=True` permite
# volver a ejecutar la celda; `final_samples=False` se salta las imágenes que `difusion train` hace
# al final, porque las nuestras las hacemos abajo.

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
# ## ¿Ha aprendido? L_simple sobre dígitos de prueba
#
# La última capa de la U-Net empieza a cero, así que antes de entrenar predice eps = 0 y su L_simple
# es E[eps^2] = 1. Se evalúan los pesos de la media móvil exponencial y una red recién creada sobre
# los 297 dígitos de prueba con el mismo t y el mismo eps para las dos (una misma semilla), de modo
# que la diferencia se debe al entrenamiento.

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
# ## Muestras (algoritmo 2)
#
# `draw_samples` empieza la imagen i con la semilla i, así que la misma llamada da las mismas
# imágenes. Con `steps` menor que T recorre una malla de tiempos espaciada (Nichol y Dhariwal), y cada
# paso usa entre dos de ellos la posterior del cuaderno 1.

# %%
samples = draw_samples(run.model, run.settings(n=32, seed=0, steps=SAMPLE_STEPS), progress=False)
print(samples.x.shape, float(samples.x.min()), float(samples.x.max()))
plt.figure(figsize=(6, 3))
plt.imshow(make_grid(samples.x, nrow=8, scale=4))
plt.axis("off")
plt.title(f"{result.step} training steps, {SAMPLE_STEPS} sampling steps")
plt.show()

# %% [markdown]
# Junto a ellas, dígitos reales del conjunto de prueba:

# %%
plt.figure(figsize=(6, 3))
plt.imshow(make_grid(test[:32], nrow=8, scale=4))
plt.axis("off")
plt.show()

# %% [markdown]
# ## Para probar
#
# - `difusion train digits diffusion.prediction=v` desde un terminal, o el mismo cambio en la celda
#   de la configuración: otro objetivo, el mismo muestreador.
# - Muestrea con `variance="beta_tilde"` en `run.settings(...)`: la otra varianza fija de Ho et al.
# - Divide `TRAIN_STEPS` por dos y vuelve a mirar las muestras.

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
# # 5. Un autoencoder variacional sobre los dígitos
#
# Presupuesto: `DIFUSION_NOTEBOOK_BUDGET=student` (el valor por defecto) entrena la configuración
# `vae-digits` sus 1500 pasos, menos de un minuto en la CPU de un portátil; `tiny` (lo que ejecuta la
# CI) entrena un par de cientos de pasos, suficientes para reconstrucciones mejores que el dígito
# medio.
#
# Qué vas a hacer: entrenar un VAE (Kingma y Welling 2014: un codificador q(z|x) = N(mu(x),
# sigma(x)^2), la reparametrización z = mu + sigma eps, un decodificador gaussiano y la KL analítica
# con N(0, I)) con un código de dos dimensiones, para poder dibujar el espacio latente; mirar las
# reconstrucciones, las muestras decodificadas desde la distribución a priori, y dónde cae cada clase
# de dígito en el código. Para leer al lado: `docs/es/autoencoders.md`, la sección del VAE.

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
# ## El entrenamiento
#
# La configuración (`src/difusion/presets/vae-digits.yaml`) dice `objective: autoencoder` con
# `autoencoder.kind=vae` y `code_size=2`; el bucle de entrenamiento es el mismo que entrena los
# modelos de difusión. `final_samples=False` se salta las medidas e imágenes que `difusion train`
# escribe al final (FID, IWAE): las nuestras las hacemos abajo.

# %%
cfg = load_config(
    "vae-digits", [f"train.steps={TRAIN_STEPS}", f"train.threads={torch.get_num_threads()}"]
)
print(cfg.autoencoder.kind, cfg.autoencoder.code_size, cfg.autoencoder.sigma)
result = train(cfg, RUN, overwrite=True, progress=False, final_samples=False)
print(f"{result.step} steps in {result.seconds:.1f} s, last loss {result.final_loss:.3f}")
vae = load_autoencoder(RUN)  # the EMA weights, in eval mode

# %% [markdown]
# ## Reconstrucciones
#
# `encode` devuelve la media de la posterior aproximada, mu(x); `decode`, la imagen media del
# decodificador. Fila de arriba: dígitos de prueba; fila de abajo: sus reconstrucciones a través de
# un código de dos números.

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
# ## Comprobación: mejor que el dígito medio
#
# La mejor reconstrucción que no mira su entrada es la imagen media del entrenamiento. Un VAE cuyo
# código lleva información sobre x tiene que mejorarla. PCA con dos componentes es la reconstrucción
# lineal desde un código del mismo tamaño: el decodificador no lineal del VAE puede superarla, pero un
# entrenamiento corto quizá no, así que esa cifra se imprime como referencia y no se comprueba.

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
# ## Muestras de la distribución a priori
#
# Un VAE es un modelo generativo: se decodifica z ~ N(0, I).

# %%
z = vae.sample_prior(32, generator=torch.Generator().manual_seed(0))
plt.figure(figsize=(6, 3))
plt.imshow(make_grid(vae.decode(z), nrow=8, scale=4))
plt.axis("off")
plt.show()

# %% [markdown]
# ## El espacio latente
#
# La mu(x) de cada dígito de prueba, coloreada por su clase, sobre el círculo de radio 2 de la
# distribución a priori; y la imagen del decodificador en cada punto de una cuadrícula de códigos.

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
# ## Para probar
#
# - `autoencoder.beta=4` en los cambios de la configuración: un beta-VAE, un código más redondo y
#   dígitos más borrosos.
# - `autoencoder.kind=ae`: un autoencoder sin más, y mira cómo son sus muestras de la distribución a
#   priori.

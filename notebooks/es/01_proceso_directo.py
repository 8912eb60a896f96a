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
# # 1. El proceso directo y su posterior, sobre los dígitos
#
# Presupuesto: este cuaderno no entrena nada. Lee `DIFUSION_NOTEBOOK_BUDGET` como los demás:
# `student` (el valor por defecto) saca más muestras de Monte Carlo para sus comprobaciones y `tiny`
# (lo que ejecuta la CI) saca menos. En los dos casos tarda segundos.
#
# Qué vas a hacer: pasar los dígitos de 8x8 de scikit-learn por el proceso directo del DDPM,
# q(x_t | x_0) (Ho et al. 2020, ecuaciones 2 y 4), ver cómo las dos programaciones de ruido
# habituales borran la señal, y comprobar dos fórmulas cerradas con tus propias muestras:
#
# 1. t pasos pequeños de la ecuación 2 se componen en la única gaussiana de la ecuación 4;
# 2. la posterior q(x_{t-1} | x_t, x_0) de las ecuaciones 6-7 es lo que da la regla de Bayes, medida
#    sacando pares (x_{t-1}, x_t) y mirando lo que x_t deja sin explicar de x_{t-1}.
#
# Para leer al lado: `docs/es/ddpm.md` (el post) o `docs/ddpm.md`, secciones 1 a 3.

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
# ## Los datos y las dos programaciones de ruido
#
# Los dígitos son imágenes de 8x8 con los píxeles llevados a [-1, 1]. El conjunto de entrenamiento
# del laboratorio son las primeras 1500 imágenes. `DDPMPath` guarda las tablas de una programación
# indexadas por la t del artículo, t = 0..T, así que `path.alpha_bar[t]` es el alpha-barra_t del
# artículo y el índice 0 es la imagen limpia.

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
# Una imagen, un eps fijo y varios t: `q_sample` es la ecuación 4 escrita con el truco de la
# reparametrización. Con la programación lineal el dígito desaparece mucho antes de t = 1000; la de
# coseno lo conserva más tiempo.

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
# ## Comprobación 1: t pasos de la ecuación 2 son un paso de la ecuación 4
#
# Se parte de N copias del mismo dígito, se aplica `q_step` (ecuación 2: x_t = sqrt(1 - beta_t)
# x_{t-1} + sqrt(beta_t) eps) t veces con ruido nuevo cada vez, y se comparan la media y la varianza
# del resultado con las de la ecuación 4, sqrt(alpha_bar_t) x_0 y 1 - alpha_bar_t. La tolerancia es
# de cinco errores estándar de la estimación de Monte Carlo: la comprobación falla si la composición
# está mal, no por mala suerte.

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
# ## La posterior q(x_{t-1} | x_t, x_0) (ecuaciones 6-7)
#
# Si además de x_t se conoce x_0, el paso atrás es gaussiano, con media
# mu~_t = sqrt(alpha_bar_{t-1}) beta_t / (1 - alpha_bar_t) x_0 + sqrt(alpha_t) (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) x_t
# y varianza beta~_t = (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) beta_t. El laboratorio la escribe
# una sola vez para todo camino gaussiano (`GaussianPath.posterior`); aquí está con los nombres de
# Ho et al., y las dos tienen que coincidir hasta el redondeo de float64.


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
# ## Comprobación 2: la regla de Bayes, medida
#
# Se saca x_{t-1} de q(x_{t-1} | x_0) y después x_t de q(x_t | x_{t-1}). Si las ecuaciones 6-7 son
# correctas, el residuo r = x_{t-1} - mu~_t(x_t, x_0) tiene media 0, varianza beta~_t y ninguna
# correlación con x_t: x_t explica todo lo que puede de x_{t-1}, y lo que queda es el ruido propio de
# la posterior.

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
# ## Los coeficientes de la posterior a lo largo de t
#
# Cuánto del paso atrás viene de x_0 y cuánto de x_t, y cómo se compara beta~_t con beta_t (las dos
# varianzas fijas del proceso inverso de Ho et al.): beta~_t es mucho menor que beta_t solo en los
# primeros pasos.

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
# ## Para probar
#
# - Cambia `t_check` o la programación en la comprobación 1: se cumple para cualquier t y cualquier
#   programación.
# - Pon `posterior_eq7` en lugar de `linear.posterior` en la comprobación 2 y estropea un
#   coeficiente a propósito: la varianza del residuo o su correlación con x_t lo delatan.

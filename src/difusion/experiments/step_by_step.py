"""The Step-by-Step tutorial's experiments (Nakkiran, Bradley, Zhou, Advani 2024), on its own process.

Exact parts (Gaussian-mixture data, no network): Fact 1's KL as Delta t shrinks, Claim 2's identity,
the variance of the two regression targets (Sec. 2.3), Pseudocode 3 on a point mass and on two
points. Trained parts (two moons, the ``sbs-toy2d`` preset: the VE process x_t = x_0 + N(0,
sigma_q^2 t) on T = 500 steps): the four parameterizations of Sec. 5 (x_{t - Delta t} as Pseudocode 1,
x_0, eps, v), each sampled by Pseudocode 2 (stochastic) and Pseudocode 3 (deterministic) from the
same x_1 at equal network calls, over seeds; and memorisation (Sec. 3.7): the exact optimum of the
empirical risk on 16 points against a network trained on the same 16 points.
"""

from __future__ import annotations

import math
import statistics
import time
from pathlib import Path

import torch

from difusion.experiments.page import figure, machine, write_page
from difusion.experiments.spec import for_budget
from difusion.experiments.training import train_timed

PREDICTIONS = ("x_prev", "x0", "eps", "v")
PRESET = "sbs-toy2d"
SETTINGS = {
    "small": dict(steps=400, seeds=(0,), n=500, fact1_T=(8, 16, 32, 64, 128), memo_n=16),
    "full": dict(
        steps=2000, seeds=(0, 1, 2), n=1000, fact1_T=(4, 8, 16, 32, 64, 128, 256, 512), memo_n=16
    ),
}
SIGMA_1D = 3.0  # sigma_q of the exact 1-D experiments


def mixture_1d():
    """0.3 N(-1, 0.2^2) + 0.7 N(1.5, 0.3^2): bimodal 1-D data for Fact 1."""
    from difusion.diffusion.oracle import GaussianMixture

    return GaussianMixture(
        torch.tensor([0.3, 0.7]), torch.tensor([[-1.0], [1.5]]), torch.tensor([[[0.04]], [[0.09]]])
    )


def mixture_8():
    """Eight Gaussians (std 0.1) on a circle of radius 1.4: 2-D data with exact expectations."""
    from difusion.diffusion.oracle import GaussianMixture

    angles = torch.arange(8) * (2 * math.pi / 8)
    mu = 1.4 * torch.stack([angles.cos(), angles.sin()], 1)
    return GaussianMixture(torch.ones(8), mu, 0.01 * torch.eye(2).expand(8, 2, 2))


# -- exact parts ---------------------------------------------------------------------------------
def fact1_table(Ts: tuple[int, ...], draws: int = 64) -> list[dict]:
    """Fact 1 measured: KL(p(x_{t-dt} | x_t) || N(mean, sigma_q^2 dt)) averaged over x_t ~ p_t, at
    t = 1/2 and at the last step t = dt, for each T = 1 / dt."""
    from difusion.diffusion.step_by_step import fact1_kl, mixture_at
    from difusion.diffusion.ve import VEPath

    mix, rows = mixture_1d(), []
    for T in Ts:
        path, row = VEPath(SIGMA_1D, T=T), {"T": T, "dt": 1.0 / T}
        for name, k in (("half", max(T // 2, 1)), ("last", 1)):
            g = torch.Generator().manual_seed(T)
            xs = mixture_at(mix, path, k).sample(draws, generator=g)[0][:, 0].tolist()
            row[f"kl_{name}"] = statistics.fmean(fact1_kl(mix, path, x, k, 4001) for x in xs)
        rows.append(row)
    return rows


def slope(rows: list[dict], key: str) -> float:
    """The least-squares slope of log KL against log dt."""
    xs = [math.log(r["dt"]) for r in rows]
    ys = [math.log(r[key]) for r in rows]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum(
        (x - mx) ** 2 for x in xs
    )


def claim2_error() -> float:
    """max |E[x_{t-dt} | x_t] (from its definition) - Claim 2's (dt/t) E[x_0|x_t] + (1 - dt/t) x_t|
    over 2000 points and every step of a 100-step path, on the eight Gaussians."""
    from difusion.diffusion import step_by_step as S
    from difusion.diffusion.ve import VEPath

    mix, path = mixture_8(), VEPath(5.0, T=100)
    x = 3 * torch.randn(2000, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    worst = 0.0
    for k in range(1, path.T + 1):
        direct = S.exact_step_mean(mix, path, x, k)
        claim = S.step_mean_from_x0(mix.posterior_mean(x, 1.0, path.sigma(k).item()), x, k)
        worst = max(worst, (direct - claim).abs().max().item())
    return worst


def target_noise(T: int = 500, sigma_q: float = 5.0, n: int = 20000) -> list[dict]:
    """Sec. 2.3's variance reduction, exactly: the noise each regression target carries around the
    function it teaches, E||target - E[target | x_t]||^2 per dimension, for the x_{t-dt} target of
    Pseudocode 1 and for Claim 2's (dt/t) x_0 (the x_0 target in the same units)."""
    from difusion.diffusion import step_by_step as S
    from difusion.diffusion.losses import step_pair
    from difusion.diffusion.ve import VEPath

    mix, path, rows = mixture_8(), VEPath(sigma_q, T=T), []
    g = torch.Generator().manual_seed(1)
    for t in (0.01, 0.1, 0.5, 1.0):
        k = max(1, round(t * T))
        x0 = mix.sample(n, generator=g)[0]
        x_t, x_prev = step_pair(path, x0, torch.full((n,), k), g)
        prev_noise = (x_prev - S.exact_step_mean(mix, path, x_t, k)).pow(2).mean().item()
        x0_hat = mix.posterior_mean(x_t, 1.0, path.sigma(k).item())
        x0_noise = ((x0 - x0_hat) / k).pow(2).mean().item()
        rows.append(dict(t=k / T, k=k, prev=prev_noise, x0=x0_noise, fact1=S.step_variance(path)))
    return rows


# -- trained parts -------------------------------------------------------------------------------
def _samples(run, n: int, seed: int = 1000):
    """Pseudocode 2 and 3 from the same x_1 ~ N(0, (1 + sigma_q^2) I), n points each."""
    from difusion.sampling.step_by_step import (
        mean_predictor,
        sample_pseudocode2,
        sample_pseudocode3,
    )

    f = mean_predictor(run.model.denoiser(run.settings()))
    g = torch.Generator().manual_seed(seed)
    x1 = torch.randn(n, 2, generator=g) * run.path.prior_std(run.path.T)
    torch.manual_seed(seed + 1)
    return (
        x1,
        sample_pseudocode2(f, run.path, x1).float(),
        sample_pseudocode3(f, run.path, x1).float(),
    )


def _mean_sd(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else float("nan"))


def spread(mean: float, sd: float) -> str:
    """ "mean ± sd", or the mean alone when there is one seed (sd is nan)."""
    return f"{mean:.4f}" + ("" if math.isnan(sd) else f" ± {sd:.4f}")


def step_by_step(budget: str, runs_root: Path, results_root: Path, progress: bool = True) -> Path:
    """Run every part (training the runs it needs, or reusing them), write the results page."""
    from difusion.data import load_dataset
    from difusion.diffusion.oracle import EmpiricalDenoiser
    from difusion.diffusion.ve import VEPath
    from difusion.metrics.two_d import energy_distance, sliced_wasserstein
    from difusion.runs import load_run
    from difusion.sampling.step_by_step import (
        mean_predictor,
        sample_pseudocode2,
        sample_pseudocode3,
    )

    st = for_budget(budget, SETTINGS)
    tag = "-small" if budget == "small" else ""
    root, out = runs_root / f"step-by-step{tag}", results_root / f"step-by-step{tag}"
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    say = print if progress else (lambda *a, **k: None)
    say("step-by-step: Fact 1, Claim 2 and the targets' noise (exact, no network)")
    result: dict = {"budget": budget, "fact1": fact1_table(st["fact1_T"])}
    result["fact1_slope"] = {k: slope(result["fact1"], f"kl_{k}") for k in ("half", "last")}
    result["claim2_max_error"] = claim2_error()
    result["target_noise"] = target_noise()

    n = st["n"]
    held_out = load_dataset("toy2d", split="test", distribution="moons", n=n).data
    train_pts = load_dataset("toy2d", distribution="moons", n=n).data
    result["floor"] = {
        "sw": sliced_wasserstein(train_pts, held_out),
        "ed": energy_distance(train_pts, held_out),
    }
    # (the run's own end-of-training samples are a small grid: the tables sample it here)
    # one thread: a 0.18M-parameter MLP gains nothing from two, and loses much on a shared machine
    common = [f"train.steps={st['steps']}", "train.checkpoint_minutes=100", "sample.n=64"]
    common += ["train.threads=1"]
    rows, runs, train_seconds = [], {}, []
    trained_before = len(list(root.glob("*/train_seconds.txt")))
    for pred in PREDICTIONS:
        for seed in st["seeds"]:
            run_dir = root / f"{pred}-seed{seed}"
            overrides = [*common, f"diffusion.prediction={pred}", f"train.seed={seed}"]
            train_seconds.append(train_timed(PRESET, overrides, run_dir, progress))
            run = runs[(pred, seed)] = load_run(run_dir)
            _, stochastic, deterministic = _samples(run, n)
            for sampler, x in (
                ("Pseudocode 2 (stochastic)", stochastic),
                ("Pseudocode 3 (deterministic)", deterministic),
            ):
                rows.append(
                    dict(
                        prediction=pred,
                        seed=seed,
                        sampler=sampler,
                        sw=sliced_wasserstein(x, held_out),
                        ed=energy_distance(x, held_out),
                    )
                )
            say(f"step-by-step: {pred} seed {seed}: SW {rows[-2]['sw']:.4f} / {rows[-1]['sw']:.4f}")
    result["rows"] = rows

    # DDPM forgets x_1, DDIM does not: two stochastic runs from the same x_1
    run = runs[("x0", st["seeds"][0])]
    x1, a, _ = _samples(run, n, seed=2000)
    torch.manual_seed(77)  # the same x_1, other noise
    f = mean_predictor(run.model.denoiser(run.settings()))
    b = sample_pseudocode2(f, run.path, x1).float()
    result["forgetting"] = {
        "same_x1": (a - b).norm(dim=1).mean().item(),
        "independent": (a - a.roll(1, 0)).norm(dim=1).mean().item(),
    }

    # memorisation: the exact optimum on m points against a network trained on the same m points
    m = st["memo_n"]
    memo_pts = load_dataset("toy2d", distribution="moons", n=m).data.double()
    memo_dir = root / f"memorise-{m}"
    overrides = [*common, f"data.n={m}", "diffusion.prediction=x0"]
    train_seconds.append(train_timed(PRESET, overrides, memo_dir, progress))
    net = load_run(memo_dir)
    exact = sample_pseudocode3(
        mean_predictor(EmpiricalDenoiser(memo_pts, net.path)),
        net.path,
        torch.randn(n, 2, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
        * net.path.prior_std(net.path.T),
    )
    _, _, learned = _samples(net, n, seed=3000)
    fine = VEPath(net.path.sigma_max, T=10 * net.path.T)  # the same process, 10x finer steps
    exact_fine = sample_pseudocode3(
        mean_predictor(EmpiricalDenoiser(memo_pts, fine)),
        fine,
        torch.randn(n, 2, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
        * fine.prior_std(fine.T),
    )
    result["memorisation"] = {}
    memo_rows = (
        (f"exact optimum, T = {net.path.T}", exact.float()),
        (f"exact optimum, T = {fine.T}", exact_fine.float()),
        (f"trained network, T = {net.path.T}", learned),
    )
    for name, x in memo_rows:
        nearest = torch.cdist(x.double(), memo_pts).min(dim=1).values
        result["memorisation"][name] = {
            "median_nearest": nearest.median().item(),
            "share_within_0.05": (nearest < 0.05).double().mean().item(),
            "sw_to_moons": sliced_wasserstein(x, held_out),
        }
    result["seconds"] = time.perf_counter() - started
    result["train_seconds"] = sum(train_seconds)
    result["trained_here"] = trained_before < len(list(root.glob("*/train_seconds.txt")))
    result["machine"] = machine()
    samples = {
        f"exact optimum, T = {net.path.T}": exact,
        f"exact optimum, T = {fine.T}": exact_fine,
    }
    samples[f"MLP trained on the same points, T = {net.path.T}"] = learned
    _figures(result, runs[("x0", st["seeds"][0])], memo_pts, samples, out)
    return _page(result, st, out, f"difusion experiment step-by-step --budget {budget}")


# -- figures -------------------------------------------------------------------------------------
def _figures(result, run, memo_pts, samples: dict, out: Path) -> None:
    from difusion.data.toy2d import sample_toy2d

    _fact1_figure(result["fact1"], out / "fact1.png")
    _ddim_points_figure(out / "ddim_points.png")
    moons = torch.from_numpy(sample_toy2d("moons", 2000, seed=0))
    with figure(out / "trajectories.png", ncols=2, figsize=(9, 4.4), dpi=110) as axes:
        from difusion.sampling.step_by_step import (
            mean_predictor,
            sample_pseudocode2,
            sample_pseudocode3,
        )

        f = mean_predictor(run.model.denoiser(run.settings()))
        g = torch.Generator().manual_seed(11)
        x1 = torch.randn(12, 2, generator=g) * run.path.prior_std(run.path.T)
        for ax, sampler, title in (
            (axes[0], sample_pseudocode2, "Pseudocode 2 (DDPM, stochastic)"),
            (axes[1], sample_pseudocode3, "Pseudocode 3 (DDIM, deterministic)"),
        ):
            states = [x1]
            torch.manual_seed(12)
            sampler(f, run.path, x1, callback=lambda s, acc=states: acc.append(s.x))
            path = torch.stack(states).float()  # (T + 1, 6, 2)
            ax.scatter(*moons.T, s=2, c="0.8")
            for i in range(path.shape[1]):
                ax.plot(path[:, i, 0], path[:, i, 1], lw=0.7)
                ax.plot(*path[-1, i], "k.", ms=5)
            ax.set(xlim=(-4, 4), ylim=(-4, 4), title=title, aspect="equal")
    with figure(out / "memorisation.png", ncols=3, figsize=(13, 4.4), dpi=110) as axes:
        for ax, (title, x) in zip(axes, samples.items(), strict=True):
            ax.scatter(*moons.T, s=2, c="0.85", label="moons")
            ax.scatter(*x.float().T, s=4, alpha=0.5, label="samples")
            ax.scatter(*memo_pts.float().T, s=40, marker="x", c="k", label="training points")
            ax.set(xlim=(-2.5, 2.5), ylim=(-2.5, 2.5), title=title, aspect="equal")
        axes[0].legend(fontsize=7, loc="lower left")


def _fact1_figure(rows: list[dict], path: Path) -> None:
    from difusion.diffusion.step_by_step import reverse_conditional_1d, step_variance
    from difusion.diffusion.ve import VEPath

    mix = mixture_1d()
    with figure(path, ncols=4, figsize=(15, 3.4), dpi=110) as axes:
        for ax, T in zip(axes[:3], (2, 8, 64), strict=True):
            p, k = VEPath(SIGMA_1D, T=T), T // 2
            x_t = 0.3
            w, mean, var = reverse_conditional_1d(mix, p, x_t, k)
            centre, b = (w * mean).sum().item(), step_variance(p)
            xs = torch.linspace(centre - 4 * b**0.5, centre + 4 * b**0.5, 400, dtype=torch.float64)
            dens = (
                w
                * torch.exp(-0.5 * (xs[:, None] - mean) ** 2 / var)
                / torch.sqrt(2 * math.pi * var)
            ).sum(1)
            gauss = torch.exp(-0.5 * (xs - centre) ** 2 / b) / math.sqrt(2 * math.pi * b)
            ax.plot(xs, dens, label="p(x_{t-dt} | x_t), exact")
            ax.plot(xs, gauss, "--", label="N(mean, sigma_q^2 dt)")
            ax.set(title=f"dt = 1/{T}, t = 1/2, x_t = {x_t}", xlabel="x_{t-dt}")
        axes[0].legend(fontsize=7)
        ax = axes[3]
        dts = [r["dt"] for r in rows]
        ax.loglog(dts, [r["kl_half"] for r in rows], "o-", label="t = 1/2")
        ax.loglog(dts, [r["kl_last"] for r in rows], "s-", label="last step t = dt")
        ref = rows[len(rows) // 2]
        ax.loglog(dts, [ref["kl_half"] * (d / ref["dt"]) ** 2 for d in dts], "k:", label="slope 2")
        ax.set(xlabel="dt = 1/T", ylabel="KL (nats)", title="Fact 1: KL to the Gaussian")
        ax.legend(fontsize=7)


def _ddim_points_figure(path: Path) -> None:
    """Pseudocode 3 with the exact mean for a point mass at 0.5 and for two points {-1, 1}."""
    from difusion.diffusion import step_by_step as S
    from difusion.diffusion.oracle import EmpiricalDenoiser
    from difusion.diffusion.ve import VEPath
    from difusion.sampling.step_by_step import mean_predictor, sample_pseudocode3

    p = VEPath(2.0, T=200)
    x1 = torch.linspace(-4, 4, 25, dtype=torch.float64)[:, None]
    star = torch.tensor([[0.5]], dtype=torch.float64)
    makers = {
        "a point mass at 0.5": lambda x, k: S.step_mean_from_x0(star.expand_as(x), x, k),
        "two points, -1 and 1": mean_predictor(
            EmpiricalDenoiser(torch.tensor([[-1.0], [1.0]], dtype=torch.float64), p)
        ),
    }
    with figure(path, ncols=2, figsize=(10, 3.6), dpi=110) as axes:
        for ax, (title, f) in zip(axes, makers.items(), strict=True):
            states = [x1]
            sample_pseudocode3(f, p, x1, callback=lambda s, acc=states: acc.append(s.x))
            traj = torch.cat(states, 1)  # (25, T + 1)
            t = torch.linspace(1, 0, p.T + 1)
            for row in traj:
                ax.plot(t, row, lw=0.8)
            ax.set(xlabel="t (1 = noise, 0 = data)", ylabel="x_t", title=f"DDIM on {title}")
            ax.invert_xaxis()


# -- the page ------------------------------------------------------------------------------------
def _page(result: dict, st: dict, out: Path, command: str) -> Path:
    f1, fl = result["fact1"], result["floor"]
    lines = [
        "# Step-by-Step Diffusion, measured (Nakkiran et al. 2024)",
        "",
        f"Reproduce: `{command}` (on {result['machine']}: {result['train_seconds']:.0f} s "
        f"training {len(PREDICTIONS) * len(st['seeds']) + 1} runs, one thread each; "
        f"{result['seconds']:.0f} s for the call that wrote this page, "
        + ("training included). " if result["trained_here"] else "reusing the runs). ")
        + "Results: `results.json` beside this page. Tutorial page: "
        "[docs/step-by-step.md](../../step-by-step.md).",
        "",
        "## Fact 1: the reverse step is almost Gaussian (exact, no network)",
        "",
        f"Data 0.3 N(-1, 0.2^2) + 0.7 N(1.5, 0.3^2), sigma_q = {SIGMA_1D:g}. KL from the exact "
        "p(x_{t-dt} | x_t) to N(its mean, sigma_q^2 dt), in nats, averaged over 64 draws of "
        "x_t ~ p_t (quadrature on 4,001 points):",
        "",
        "| T = 1/dt | KL at t = 1/2 | KL at the last step (t = dt) |",
        "|---|---|---|",
        *[f"| {r['T']} | {r['kl_half']:.3g} | {r['kl_last']:.3g} |" for r in f1],
        "",
        f"Slope of log KL against log dt: {result['fact1_slope']['half']:.2f} at t = 1/2, "
        f"{result['fact1_slope']['last']:.2f} at the last step. The argument gives 2 (the "
        "conditional's variance differs from sigma_q^2 dt by a fraction of order dt, and the KL "
        "is quadratic in it) once sigma_q^2 dt is small against the data's own variance: at "
        "t = 1/2 that variance is 0.04 + 4.5 and the rate holds from the start; at the last step "
        "it is 0.2^2 = 0.04, which needs T well above sigma_q^2 / 0.04 = 225 steps. Per step the "
        "error falls as dt^2, and the T = 1/dt steps add up to order dt.",
        "",
        "![Fact 1](fact1.png)",
        "",
        "## Claim 2 (exact)",
        "",
        "E[x_{t-dt} | x_t] computed from its definition (the marginal at t - dt seen through one "
        "step of noise) against (dt/t) E[x_0 | x_t] + (1 - dt/t) x_t, on eight Gaussians, 2,000 "
        f"points, every step of a 100-step path: largest difference {result['claim2_max_error']:.1e}.",
        "",
        "## Sec. 2.3: the noise in each regression target (exact)",
        "",
        "E||target - E[target | x_t]||^2 per dimension on eight Gaussians, sigma_q = 5, T = 500 "
        "(20,000 draws each): Pseudocode 1's target x_{t-dt} against the x_0 target in the same "
        "units, (dt/t) x_0. Both have the same regression function E[x_{t-dt} | x_t] (Claim 2).",
        "",
        "| t | x_{t-dt} target | (dt/t) x_0 target | ratio | sigma_q^2 dt (Fact 1) |",
        "|---|---|---|---|---|",
        *[
            f"| {r['t']:g} | {r['prev']:.3g} | {r['x0']:.3g} | {r['prev'] / max(r['x0'], 1e-300):.3g} "
            f"| {r['fact1']:.3g} |"
            for r in result["target_noise"]
        ],
        "",
        "## Parameterizations and samplers on two moons (trained)",
        "",
        f"The `{PRESET}` preset: sigma_q = 5, T = 500, the toy2d MLP, {st['steps']} steps; "
        f"seeds {', '.join(map(str, st['seeds']))}. {st['n']} samples from the same x_1 for both "
        "samplers (500 network calls each), scored against held-out points; noise floor "
        f"(training vs held-out points): sliced Wasserstein {fl['sw']:.4f}, energy distance "
        f"{fl['ed']:.4f}. Mean and standard deviation over seeds"
        + (" (one seed: no spread measured)." if len(st["seeds"]) == 1 else "."),
        "",
        "| prediction | sampler | sliced Wasserstein | energy distance |",
        "|---|---|---|---|",
    ]
    rows = result["rows"]
    for pred in PREDICTIONS:
        for sampler in dict.fromkeys(r["sampler"] for r in rows):
            sel = [r for r in rows if r["prediction"] == pred and r["sampler"] == sampler]
            sw, sw_sd = _mean_sd([r["sw"] for r in sel])
            ed, ed_sd = _mean_sd([r["ed"] for r in sel])
            lines.append(f"| {pred} | {sampler} | {spread(sw, sw_sd)} | {spread(ed, ed_sd)} |")
    fg, memo = result["forgetting"], result["memorisation"]
    lines += [
        "",
        "DDPM's output hardly depends on x_1 (Sec. 3.6): two Pseudocode 2 runs of the x0 model "
        f"from the same {st['n']} starting points end {fg['same_x1']:.3f} apart on average, "
        f"independent samples {fg['independent']:.3f}; Pseudocode 3 is a function of x_1 "
        "(distance 0).",
        "",
        "![DDPM and DDIM from the same x_1](trajectories.png)",
        "",
        "Pseudocode 3 with the exact mean on a point mass and on two points:",
        "",
        "![DDIM on a point mass and on two points](ddim_points.png)",
        "",
        f"## Sec. 3.7: memorisation ({st['memo_n']} training points)",
        "",
        "| model | median distance to the nearest training point | share within 0.05 | "
        "sliced Wasserstein to moons |",
        "|---|---|---|---|",
        *[
            f"| {name} | {v['median_nearest']:.4f} | {v['share_within_0.05']:.2f} | "
            f"{v['sw_to_moons']:.4f} |"
            for name, v in memo.items()
        ],
        "",
        "![memorisation](memorisation.png)",
        "",
        "The exact optimum's last DDIM step returns E[x_0 | x_dt], a blend of the training points "
        "within about sigma_q sqrt(dt) of x_dt; as dt shrinks it lands on the points themselves "
        "(the finer row). The trained network's samples lie between and around the points.",
    ]
    return write_page(out, lines, result)


CUSTOM = {"step-by-step": step_by_step}


# -- the same table on Fashion-MNIST (a recipe: the runner trains and scores it) -----------------
def fmnist(budget: str):
    """The four parameterizations on the tutorial's process over Fashion-MNIST: the improved-DDPM
    experiments' small U-Net and budget (base 16 channels, 600 steps), sigma_q = 5, T = 400; each
    model sampled with Pseudocode 3 (the lab's ddim, eta = 0, all T steps: the same map) and with
    Ho et al.'s ancestral sampler (all T steps), FID-FMNIST on 300 samples."""
    from difusion.experiments.ddpm import TINY
    from difusion.experiments.spec import EvalSpec, Experiment, RunSpec

    st = for_budget(
        budget,
        {
            "small": dict(net=[*TINY, "sample.n=8"], steps=30, T=20, n=64, ref=300),
            "full": dict(
                net=["model.base_channels=16", "train.sample_every=0", "sample.n=16"],
                steps=600,
                T=400,
                n=300,
                ref=None,
            ),
        },
    )
    net, T, n, ref = st["net"], st["T"], st["n"], st["ref"]
    length = [f"train.steps={st['steps']}", "train.minutes=null"]
    process = ["diffusion.path=ve", "diffusion.sigma_max=5", f"diffusion.T={T}", "train.threads=1"]
    tag = "-small" if budget == "small" else ""
    runs = []
    for pred in PREDICTIONS:
        overrides = [*net, *length, *process, f"diffusion.prediction={pred}", f"sample.steps={T}"]
        for sampler, label in (("ddim", "Pseudocode 3 (ddim)"), ("ddpm", "ancestral (ddpm)")):
            ev = EvalSpec(n, T, sampler, 0.0, metrics=("fid", "pr"), n_reference=ref)
            runs.append(
                RunSpec(
                    f"{pred}, {label}",
                    "ddpm-fmnist",
                    overrides,
                    run=f"step-by-step-fmnist{tag}/{pred}",
                    evaluation=ev,
                )
            )
    return Experiment(
        name=f"step-by-step-fmnist{tag}",
        title="Step-by-Step's parameterizations on Fashion-MNIST (Nakkiran et al. 2024, Sec. 5)",
        description=(
            "The tutorial's process x_t = x_0 + N(0, sigma_q^2 t), sigma_q = 5, on T = "
            f"{T} steps, with the x_(t-dt) target of Pseudocode 1, x_0, eps and v; one run each "
            f"(the ddpm-fmnist U-Net at base 16 channels, {st['steps']} steps, seed 0), sampled "
            "with all T "
            "steps by the deterministic Pseudocode 3 (the lab's ddim with eta = 0) and by Ho et "
            "al.'s ancestral sampler. One seed: no spread measured."
        ),
        runs=runs,
        evaluation=EvalSpec(),
        command=f"difusion experiment step-by-step-fmnist --budget {budget}",
        notes="Read with docs/step-by-step.md, Sec. 5.",
    )


EXPERIMENTS = {"step-by-step-fmnist": fmnist}

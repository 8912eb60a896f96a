"""Flow matching against DDPM/DDIM at equal network evaluations (NFE), with and without reflow.

2-D data (two moons), where an exact distance to the data is cheap: three models share the MLP and
the training budget of the ``toy2d`` presets -- a DDPM (eps-prediction) model, a rectified-flow
model, and its reflow (trained on 2-D pairs (eps, x_0 = RK4(eps)) drawn from the flow model,
starting from its weights). Each is sampled with every sampler at NFE 1, 2, 5, 10, 50 and scored
by the sliced Wasserstein distance and the energy distance to held-out points. The flow models'
exact ODE log-likelihood (exact 2-D divergence, RK4) of held-out points comes with them.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from difusion.experiments.ddpm import LC_10
from difusion.experiments.page import figure, machine, write_page
from difusion.experiments.spec import for_budget
from difusion.experiments.training import finished, train_timed

NFES = (1, 2, 5, 10, 50)
# two moons: training steps of each model, of the reflow and its pairs, samples (and held-out
# points), NFE budgets, and held-out points of the NLL
SETTINGS = {
    "small": dict(steps=300, reflow_steps=200, pairs=1000, n=500, nfes=(1, 5), nll_n=100),
    "full": dict(steps=3000, reflow_steps=2000, pairs=8000, n=2000, nfes=NFES, nll_n=1000),
}


# (label, which model, sampler, NFE per step)
METHODS = (
    ("FM + fm-euler", "fm", "fm-euler", 1),
    ("FM + fm-heun", "fm", "fm-heun", 2),
    ("FM + fm-rk4", "fm", "fm-rk4", 4),
    ("reflow + fm-euler", "reflow", "fm-euler", 1),
    ("reflow + fm-heun", "reflow", "fm-heun", 2),
    ("FM + ddim (adapter)", "fm", "ddim", 1),
    ("DDPM + ddim", "ddpm", "ddim", 1),
    ("DDPM + ddpm", "ddpm", "ddpm", 1),
    ("DDPM + dpmpp-2m", "ddpm", "dpmpp-2m", 1),
    ("DDPM + fm-euler (adapter)", "ddpm", "fm-euler", 1),
)


def _draw(run, sampler: str, steps: int, n: int, seed: int = 1000, device="cpu") -> torch.Tensor:
    """n samples of a loaded run (any model, any sampler; DDIM with eta = 0), seeds seed...."""
    from difusion.sampling.pipeline import draw_samples

    settings = run.settings(n=n, seed=seed, steps=steps, sampler=sampler, eta=0.0)
    return draw_samples(run.model, settings, device=device, progress=False).x.float()


def _equal_nfe(methods, nfes) -> list[tuple]:
    """(method, NFE budget, steps) for each method (its last field: network calls per step) at
    each NFE budget that buys it at least one step."""
    return [(m, nfe, nfe // m[-1]) for m in methods for nfe in nfes if nfe // m[-1] >= 1]


def flow_vs_ddpm(budget: str, runs_root: Path, results_root: Path, progress: bool = True) -> Path:
    """Train (or reuse) the three 2-D models, sample each at equal NFE, write the results page."""
    from difusion.data import load_dataset
    from difusion.diffusion.likelihood_ode import ode_log_likelihood
    from difusion.metrics.nll_ode import ode_velocity
    from difusion.metrics.two_d import energy_distance, sliced_wasserstein
    from difusion.runs import load_run

    st = for_budget(budget, SETTINGS)
    tag = "-small" if budget == "small" else ""
    root = runs_root / f"flow-vs-ddpm{tag}"
    out = results_root / f"flow-vs-ddpm{tag}"
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    steps = [f"train.steps={st['steps']}", "train.checkpoint_minutes=100", "sample.n=500"]
    seconds = {
        "ddpm": train_timed("toy2d", steps, root / "ddpm", progress),
        "fm": train_timed("fm-toy2d", steps, root / "fm", progress),
    }
    seconds["reflow"] = train_timed(
        "fm-toy2d",
        [
            f"train.steps={st['reflow_steps']}",
            "train.checkpoint_minutes=100",
            f"flow.reflow={root / 'fm'}",
            f"flow.reflow_pairs={st['pairs']}",
            "flow.reflow_steps=25",
        ],
        root / "reflow",
        progress,
    )
    runs = {k: load_run(root / k) for k in ("ddpm", "fm", "reflow")}
    n = st["n"]
    held_out = load_dataset("toy2d", split="test", distribution="moons", n=n).data
    train_pts = load_dataset("toy2d", distribution="moons", n=n).data
    floor = {
        "sw": sliced_wasserstein(train_pts, held_out),
        "ed": energy_distance(train_pts, held_out),
    }
    rows = []
    for (label, model, sampler, per_step), nfe, k in _equal_nfe(METHODS, st["nfes"]):
        x = _draw(runs[model], sampler, k, n)
        rows.append(
            {
                "method": label,
                "nfe_budget": nfe,
                "nfe": k * per_step,
                "steps": k,
                "sw": sliced_wasserstein(x, held_out),
                "ed": energy_distance(x, held_out),
            }
        )
        if progress:
            print(f"flow-vs-ddpm: {label} NFE {k * per_step}: SW {rows[-1]['sw']:.4f}")
    nll = {}
    for model in ("fm", "reflow"):
        pts = held_out[: st["nll_n"]].float()  # float32: the time embedding is float32
        log_p, _ = ode_log_likelihood(ode_velocity(runs[model]), pts, steps=50)
        nll[model] = -log_p.double().mean().item()
    result = {
        "rows": rows,
        "floor": floor,
        "nll_nats": nll,
        "train_seconds": seconds,
        "seconds": time.perf_counter() - started,
        "budget": budget,
    }
    _plot(rows, floor, out / "sw_vs_nfe.png")
    return _page(result, st, out, f"difusion experiment flow-vs-ddpm --budget {budget}")


def _plot(rows: list[dict], floor: dict, path: Path) -> None:
    with figure(path, figsize=(7, 4.5), dpi=110) as ax:
        for label in dict.fromkeys(r["method"] for r in rows):
            pts = [(r["nfe"], r["sw"]) for r in rows if r["method"] == label]
            style = "-" if label.startswith(("FM", "reflow")) else "--"
            ax.plot(*zip(*pts, strict=True), style, marker="o", label=label)
        ax.axhline(floor["sw"], color="grey", lw=0.8, label="train vs test data")
        ax.set(
            xscale="log",
            yscale="log",
            xlabel="network evaluations (NFE)",
            ylabel="sliced Wasserstein to held-out data",
            title="two moons: samples at equal NFE",
        )
        ax.legend(fontsize=7)


def _nfe_table(rows: list[dict], cell) -> list[str]:
    """A Markdown table: a line per method, a column per NFE budget, ``cell(row)`` in each."""
    nfes = sorted({r["nfe_budget"] for r in rows})
    lines = ["| method | " + " | ".join(map(str, nfes)) + " |", "|---" * (len(nfes) + 1) + "|"]
    for label in dict.fromkeys(r["method"] for r in rows):
        found = {r["nfe_budget"]: r for r in rows if r["method"] == label}
        cells = [cell(found[k]) if k in found else "" for k in nfes]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def _page(result: dict, st: dict, out: Path, command: str) -> Path:
    rows = result["rows"]
    lines = [
        "# Flow matching vs DDPM/DDIM at equal network evaluations (two moons)",
        "",
        f"Reproduce: `{command}` ({result['seconds']:.0f} s here on {machine()}, training "
        f"included: DDPM {result['train_seconds']['ddpm']:.0f} s, FM "
        f"{result['train_seconds']['fm']:.0f} s, reflow {result['train_seconds']['reflow']:.0f} s"
        " including its pairs).",
        "",
        f"Models: the `toy2d` MLP (hidden 128, depth 3), {st['steps']} training steps each for "
        f"DDPM (linear schedule, T = 200, eps-prediction) and rectified flow (`fm-toy2d`); reflow "
        f"= {st['reflow_steps']} more steps on {st['pairs']} pairs (eps, RK4 25 steps of the FM "
        f"model), starting from its weights. {st['n']} samples each (seeds 1000...), scored "
        f"against {st['n']} held-out points. Heun/RK4 use floor(NFE / 2 or 4) steps; the NFE "
        "column is the real count. Noise floor (training vs held-out data): sliced Wasserstein "
        f"{result['floor']['sw']:.4f}, energy distance {result['floor']['ed']:.4f}.",
        "",
        "Sliced Wasserstein (lower is better; NFE budget in the header, real NFE in brackets):",
        "",
        *_nfe_table(rows, lambda r: f"{r['sw']:.4f} ({r['nfe']})"),
        "",
        "Energy distance:",
        "",
        *_nfe_table(rows, lambda r: f"{r['ed']:.4f}"),
    ]
    nll = result["nll_nats"]
    lines += [
        "",
        f"Exact ODE negative log-likelihood of {st['nll_n']} held-out points (exact 2-D divergence, "
        f"RK4 50 steps): FM {nll['fm']:.3f} nats/point, reflow {nll['reflow']:.3f} nats/point.",
        "",
        "![SW vs NFE](sw_vs_nfe.png)",
    ]
    return write_page(out, lines, result)


_TINY_UNET = [  # seconds: the plumbing, not the numbers
    "model.base_channels=8",
    "model.channel_mult=[1,2]",
    "model.attention_levels=[1]",
    "model.num_res_blocks=1",
    "model.num_heads=2",
    "sample.n=8",
    "train.sample_every=0",
]
# Fashion-MNIST: overrides and training steps of the flow run (full: the pixel DDPM's budget, 1493
# steps = its 10 minutes), samples, NFE budgets, test images and RK4 steps of the bits/dim
FMNIST_SETTINGS = {
    "small": dict(overrides=_TINY_UNET, steps=20, n=32, nfes=(1, 4), bpd_n=4, bpd_steps=(2,)),
    "full": dict(
        overrides=[],
        steps=1493,
        n=300,
        nfes=(1, 2, 5, 10, 20, 50),
        bpd_n=100,
        bpd_steps=(5, 10, 20, 50, 100),
    ),
}


def flow_fmnist(budget: str, runs_root: Path, results_root: Path, progress: bool = True) -> Path:
    """Fashion-MNIST: the fm-fmnist run against the learning curve's 10-minute pixel DDPM
    (same U-Net, same steps) at equal NFE by domain FID on 300 samples; ODE bits/dim of the flow."""
    from difusion.data import load_dataset
    from difusion.diffusion.likelihood_ode import bits_per_dim, dequantize, ode_log_likelihood
    from difusion.evaluation import evaluate, load_samples
    from difusion.metrics.nll_ode import ode_velocity
    from difusion.runs import load_run, samples_for_eval
    from difusion.training.distributed import default_device

    device = default_device()

    st = for_budget(budget, FMNIST_SETTINGS)
    tag = "-small" if budget == "small" else ""
    out = results_root / f"flow-fmnist{tag}"
    fm_dir = runs_root / "flow" / f"fm-fmnist{tag}"
    started = time.perf_counter()
    train_timed(
        "fm-fmnist",
        [*st["overrides"], f"train.steps={st['steps']}", "train.minutes=null"],
        fm_dir,
        progress,
    )
    fm = load_run(fm_dir, device)
    ddpm_dir = runs_root / LC_10
    rows = []

    def score(images) -> float:
        r = evaluate(images.float().clamp(-1, 1), None, metrics=("fid",), progress=False)
        return r.metrics["fid_domain"]

    methods = [
        ("FM + fm-euler", "fm-euler", 1),
        ("FM + fm-heun", "fm-heun", 2),
        ("FM + ddim (adapter)", "ddim", 1),
    ]
    for (label, sampler, per_step), nfe, k in _equal_nfe(methods, st["nfes"]):
        t0 = time.perf_counter()
        x = _draw(fm, sampler, k, st["n"], seed=0, device=device)
        secs = time.perf_counter() - t0
        rows.append(
            {
                "method": label,
                "nfe_budget": nfe,
                "nfe": k * per_step,
                "fid_domain": score(x),
                "sampling_s": round(secs, 1),
            }
        )
        if progress:
            print(f"flow-fmnist: {label} NFE {k * per_step}: FID {rows[-1]['fid_domain']:.2f}")
    if finished(ddpm_dir) and budget == "full":
        for nfe in st["nfes"]:
            npz, _ = samples_for_eval(
                ddpm_dir,
                n=st["n"],
                steps=nfe,
                sampler="ddim",
                eta=0.0,
                progress=False,
                device=device,
            )
            images, _, _ = load_samples(npz)
            rows.append(
                {
                    "method": "DDPM + ddim",
                    "nfe_budget": nfe,
                    "nfe": nfe,
                    "fid_domain": score(images),
                    "sampling_s": float((npz.parent / "sampling_seconds.txt").read_text()),
                }
            )
    test = load_dataset("fashion-mnist", split="test").data[: st["bpd_n"]].float()
    x = dequantize(test, torch.Generator().manual_seed(0)).to(device)
    velocity = ode_velocity(fm)
    bpd = {}
    for steps in st["bpd_steps"]:
        t0 = time.perf_counter()
        log_p, _ = ode_log_likelihood(
            velocity,
            x,
            steps=steps,
            method="rk4",
            divergence="hutchinson",
            generator=torch.Generator().manual_seed(1),
        )
        b = bits_per_dim(log_p.double().cpu(), x[0].numel())
        bpd[steps] = {
            "bpd": b.mean().item(),
            "se": (b.std() / len(b) ** 0.5).item(),
            "seconds": round(time.perf_counter() - t0, 1),
        }
    result = {
        "rows": rows,
        "bpd": bpd,
        "seconds": time.perf_counter() - started,
        "budget": budget,
        "n": st["n"],
        "bpd_n": st["bpd_n"],
    }
    return _fmnist_page(result, out, f"difusion experiment flow-fmnist --budget {budget}")


def _fmnist_page(result: dict, out: Path, command: str) -> Path:
    lines = [
        "# Flow matching vs DDPM on Fashion-MNIST at equal network evaluations",
        "",
        f"Reproduce: `{command}` ({result['seconds']:.0f} s on {machine()} for sampling and "
        "scoring; the "
        "fm-fmnist run is trained first if missing: 1493 steps, the 10-minute pixel DDPM's "
        "count, same U-Net and batch).",
        "",
        f"Domain FID (the shipped Fashion-MNIST classifier's features) of {result['n']} samples "
        "(seeds 0...) against the test set; NFE budget across, real NFE in brackets. The DDPM "
        "row is the learning curve's 10-minute run (`docs/results/learning-curve`) with DDIM "
        "eta = 0.",
        "",
        *_nfe_table(result["rows"], lambda r: f"{r['fid_domain']:.2f} ({r['nfe']})"),
        "",
        f"ODE bits/dim of the flow model on {result['bpd_n']} test images (uniform "
        "dequantization, Hutchinson divergence with one Rademacher vector per image, RK4):",
        "",
        "| RK4 steps (4 calls each) | bits/dim | standard error | seconds |",
        "|---|---|---|---|",
    ]
    for steps, b in result["bpd"].items():
        lines.append(f"| {steps} | {b['bpd']:.3f} | {b['se']:.3f} | {b['seconds']} |")
    return write_page(out, lines, result)


CUSTOM = {"flow-vs-ddpm": flow_vs_ddpm, "flow-fmnist": flow_fmnist}

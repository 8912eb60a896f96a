"""Experiments of the autoencoder chapter: reconstruction against code size (PCA, AE, VAE, VQ-VAE),
the beta-VAE rate-distortion sweep, and the VAE's NLL on MNIST and Fashion-MNIST (IWAE bound).

Each trains small runs (or reuses finished ones, or resumes interrupted ones) under
RUNS/NAME/LABEL and writes README.md, results.json and plots into RESULTS/NAME/."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import torch

from difusion.experiments.page import figure, machine, write_page
from difusion.experiments.spec import for_budget
from difusion.experiments.training import train_run

_STARTED = time.perf_counter()
CODE_SIZES = {"small": (16,), "full": (16, 32, 64)}
BETAS = {"small": (1.0, 8.0), "full": (0.25, 1.0, 4.0, 16.0)}


def _budget(budget: str) -> list[str]:
    """Training overrides per budget: 20 steps for the test; for the results 1,000 steps of batch
    64 with the MLP encoder/decoder (a step budget, not a time budget: the CPU here is shared by
    several agents, so wall time says little, and the MLP trains about 6 times more images per
    second than the convolutional network)."""
    steps, eval_n = for_budget(budget, {"small": (20, 100), "full": (1000, 1000)})
    return [
        f"train.steps={steps}",
        "train.minutes=null",
        f"autoencoder.eval_n={eval_n}",
        "autoencoder.network=mlp",
        "autoencoder.hidden=512",
        "autoencoder.depth=2",
    ]


def train_or_reuse(preset: str, overrides: list[str], run_dir: Path, progress: bool) -> dict:
    """The measures.json of a finished run in ``run_dir``; trains (or resumes) it first if needed
    (``train_run``)."""
    started = time.perf_counter()
    if train_run(preset, overrides, run_dir, progress) != "reused":
        piece = os.environ.get("DIFUSION_PIECE_MINUTES")  # split a long experiment into pieces
        if piece and time.perf_counter() - _STARTED > 60 * float(piece):
            raise SystemExit(3)  # rerun the same command: it reuses the finished runs
    m = json.loads((run_dir / "measures.json").read_text())
    m.setdefault("train_minutes", _train_minutes(run_dir))
    m["wall_s_here"] = round(time.perf_counter() - started, 1)
    return m


def _train_minutes(run_dir: Path) -> float | None:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return round(json.loads(lines[-1]).get("elapsed_s", 0) / 60, 2) if lines else None


def _plot(path: Path, series: dict, xlabel: str, ylabel: str, logx=False, logy=False) -> None:
    with figure(path, figsize=(4.6, 3.3), dpi=110) as ax:
        for label, (xs, ys) in series.items():
            ax.plot(xs, ys, "o-", label=label)
        if logx:
            ax.set_xscale("log", base=2)
        if logy:
            ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)


def code_size(budget: str, runs_root: Path, results_root: Path, progress: bool = True) -> Path:
    """Test reconstruction MSE against code size for PCA, AE, VAE and VQ-VAE on Fashion-MNIST."""
    from difusion.autoencoders.measures import PCA, mse_per_image
    from difusion.autoencoders.scoring import test_images, train_images
    from difusion.config import load_config

    t0 = time.perf_counter()
    base = _budget(budget) + ["autoencoder.fid_n=0", "autoencoder.iwae_k=0"]
    name = "ae-code-size" + ("-small" if budget == "small" else "")
    out = results_root / name
    out.mkdir(parents=True, exist_ok=True)
    models = {
        "AE": ("ae-fmnist", []),
        "VAE": ("vae-fmnist", []),
        # a flat VQ-VAE: code_size positions, each one of 64 codes of dimension 16
        "VQ-VAE": ("vqvae-fmnist", ["autoencoder.spatial=false"]),
    }
    cfg = load_config("ae-fmnist", base)
    x_test, _ = test_images(cfg, cfg.autoencoder.eval_n)
    x_train = train_images(cfg)[:20000]
    rows = []
    for k in CODE_SIZES[budget]:
        pca_mse = mse_per_image(PCA.fit(x_train, k).reconstruct(x_test).clamp(-1, 1), x_test)
        rows.append({"model": "PCA", "code_size": k, "mse": float(pca_mse.mean())})
        for label, (preset, extra) in models.items():
            run_dir = runs_root / name / f"{label.lower()}-{k}"
            m = train_or_reuse(
                preset, base + extra + [f"autoencoder.code_size={k}"], run_dir, progress
            )
            kept = ("mse", "psnr_db", "ssim", "train_minutes", "perplexity")
            rows.append({"model": label, "code_size": k} | {q: m[q] for q in kept if q in m})
            if progress:
                print(f"ae-code-size: {label} k={k}: MSE {m['mse']:.4f}")
    sizes = CODE_SIZES[budget]
    mse = {label: [r["mse"] for r in rows if r["model"] == label] for label in ("PCA", *models)}
    series = {label: (sizes, values) for label, values in mse.items()}
    _plot(out / "mse.png", series, "code size", "test MSE ([-1, 1] scale)", logx=True, logy=True)
    table = [
        "| model | " + " | ".join(f"k = {k}" for k in sizes) + " |",
        "|---|" + "---|" * len(sizes),
    ]
    for label, values in mse.items():
        table.append(f"| {label} | " + " | ".join(f"{v:.4f}" for v in values) + " |")
    minutes = (time.perf_counter() - t0) / 60
    lines = [
        "# Reconstruction against code size: PCA, AE, VAE, VQ-VAE (Fashion-MNIST)",
        "",
        f"Test MSE per pixel on the [-1, 1] scale over {len(x_test)} Fashion-MNIST test images. "
        "PCA is fitted on 20,000 training images (torch SVD). The AE, VAE (Gaussian decoder, "
        "sigma 0.1) and VQ-VAE share the MLP encoder/decoder of `src/difusion/nn/autoencoders.py` "
        "(two tanh layers of 512); the VAE is scored on its posterior mean. For the "
        "VQ-VAE, code size k means k code positions, each one of 64 codebook vectors (6 bits): "
        "k indices, not k real numbers, so it carries far less information than the others.",
        "",
        f"Each run: {'20' if budget == 'small' else '1,000'} steps of batch 64 (AdamW lr 2e-3) "
        f"on {machine()} (the train minutes are in "
        "results.json).",
        "",
        f"Reproduce: `difusion experiment ae-code-size --budget {budget}` "
        f"({minutes:.1f} min here, reusing finished runs).",
        "",
        *table,
        "",
        "![MSE against code size](mse.png)",
    ]
    return write_page(out, lines, rows)


def beta_sweep(budget: str, runs_root: Path, results_root: Path, progress: bool = True) -> Path:
    """beta-VAE: rate (KL, nats) against distortion (MSE), prior samples and interpolations."""
    from difusion.autoencoders import load_autoencoder
    from difusion.autoencoders.pictures import interpolate
    from difusion.autoencoders.scoring import test_images
    from difusion.viz import save_grid

    t0 = time.perf_counter()
    fid_n = 200 if budget == "small" else 1000
    base = _budget(budget) + [
        f"autoencoder.fid_n={fid_n}",
        "autoencoder.iwae_k=0",
        "autoencoder.kind=beta-vae",
    ]
    name = "beta-vae" + ("-small" if budget == "small" else "")
    out = results_root / name
    out.mkdir(parents=True, exist_ok=True)
    rows, samples, paths = [], [], []
    for beta in BETAS[budget]:
        run_dir = runs_root / name / f"beta-{beta:g}"
        m = train_or_reuse("vae-fmnist", base + [f"autoencoder.beta={beta}"], run_dir, progress)
        rows.append(
            {
                "beta": beta,
                "rate_kl_nats": m["kl_nats"],
                "mse": m["mse"],
                "elbo_nats": m["elbo_nats"],
                "active_units": m["active_units"],
                "fid_domain_prior": m.get("fid_domain_prior"),
                "train_minutes": m["train_minutes"],
            }
        )
        model = load_autoencoder(run_dir)
        g = torch.Generator().manual_seed(0)
        samples.append(model.decode(model.sample_prior(10, g)).clamp(-1, 1))
        x, _ = test_images(model.config, 2)
        paths.append(interpolate(model, x[0], x[1], 10))
        if progress:
            print(f"beta-vae: beta={beta:g}: KL {m['kl_nats']:.1f} nats, MSE {m['mse']:.4f}")
    _plot(
        out / "rate_distortion.png",
        {"beta-VAE": ([r["rate_kl_nats"] for r in rows], [r["mse"] for r in rows])},
        "rate: KL(q(z|x) || p(z)) in nats",
        "distortion: test MSE",
        logy=True,
    )
    save_grid(torch.cat(samples), out / "samples.png", nrow=10)
    save_grid(torch.cat(paths), out / "interpolations.png", nrow=10)
    minutes = (time.perf_counter() - t0) / 60
    lines = [
        "# beta-VAE: rate against distortion (Fashion-MNIST)",
        "",
        "The VAE of `vae-fmnist` with the MLP encoder/decoder (32 latent dimensions, Gaussian "
        "decoder with sigma 0.1 on the "
        "[-1, 1] scale) trained with the KL weighted by beta (Higgins et al. 2017). Rate = the "
        f"KL term in nats averaged over {100 if budget == 'small' else 1000} test images; distortion = test MSE of "
        "the posterior-mean reconstruction. FID of prior samples uses the shipped Fashion-MNIST "
        f"classifier's features ({fid_n} samples against the test split).",
        "",
        f"Reproduce: `difusion experiment beta-vae --budget {budget}` ({minutes:.1f} min here; "
        f"each run {'20' if budget == 'small' else '1,000'} steps of batch 64 on {machine()}).",
        "",
        "| beta | rate KL (nats) | MSE | ELBO (nats) | active units | FID (prior, domain) |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        fid = f"{r['fid_domain_prior']:.2f}" if r["fid_domain_prior"] is not None else "-"
        lines.append(
            f"| {r['beta']:g} | {r['rate_kl_nats']:.1f} | {r['mse']:.4f} | "
            f"{r['elbo_nats']:.1f} | {r['active_units']} | {fid} |"
        )
    betas = ", ".join(f"{b:g}" for b in BETAS[budget])
    lines += [
        "",
        "![rate against distortion](rate_distortion.png)",
        "",
        f"Prior samples, one row per beta ({betas}; same z in each column):",
        "",
        "![samples](samples.png)",
        "",
        f"Interpolation between the same two test images, one row per beta ({betas}):",
        "",
        "![interpolations](interpolations.png)",
    ]
    return write_page(out, lines, rows)


NLL_K = {"small": (1, 10), "full": (1, 50, 5000)}


def vae_nll(budget: str, runs_root: Path, results_root: Path, progress: bool = True) -> Path:
    """The VAE's NLL in nats by the IWAE bound (Burda et al. 2016) on binarized MNIST and
    Fashion-MNIST, next to the published one-layer VAE number."""
    from difusion.autoencoders import load_autoencoder
    from difusion.autoencoders.measures import iwae_bound
    from difusion.autoencoders.scoring import test_images
    from difusion.training.distributed import default_device

    device = default_device()

    t0 = time.perf_counter()
    n_test = 100 if budget == "small" else 500
    steps = 20 if budget == "small" else 3000
    train = [f"train.steps={steps}", "train.minutes=null"]
    base = train + [
        "autoencoder.kind=vae",
        "autoencoder.network=mlp",
        "autoencoder.likelihood=bernoulli",
        "autoencoder.code_size=50",
        "autoencoder.hidden=200",
        "autoencoder.depth=2",
        "autoencoder.fid_n=0",
        "autoencoder.iwae_k=0",
        "autoencoder.eval_n=1000",
        "train.batch_size=100",
        "train.lr=1e-3",
        "train.ema_decay=0.999",
    ]
    name = "vae-nll" + ("-small" if budget == "small" else "")
    out = results_root / name
    rows = []
    for data in ("mnist", "fashion-mnist"):
        run_dir = runs_root / name / data
        train_or_reuse("vae-fmnist", base + [f"data.name={data}"], run_dir, progress)
        model = load_autoencoder(run_dir, device)
        x, _ = test_images(model.config, n_test)
        x = x.to(device)
        row = {
            "data": data,
            "n_test": n_test,
            "train_minutes": _train_minutes(run_dir),
            "steps": model.step,
            "passes": round(model.step * model.config.train.batch_size / 60000, 1),
        }
        for k in NLL_K[budget]:
            t = time.perf_counter()
            g = torch.Generator().manual_seed(0)
            with torch.no_grad():  # an estimate, not a loss: keep no graph over 500 x k samples
                b = iwae_bound(model, x, k, model.config.autoencoder.sigma, g)
            row[f"nll_k{k}"] = float(-b.mean())
            row[f"nll_k{k}_se"] = float(b.std() / len(b) ** 0.5)
            row[f"seconds_k{k}"] = round(time.perf_counter() - t, 1)
            if progress:
                print(f"vae-nll: {data} k={k}: {row[f'nll_k{k}']:.2f} nats")
        rows.append(row)
    ks = NLL_K[budget]
    total = (time.perf_counter() - t0) / 60
    lines = [
        "# VAE negative log-likelihood (IWAE bound), binarized MNIST and Fashion-MNIST",
        "",
        "The one-stochastic-layer VAE of Burda et al. 2016 (50 latent dimensions, two tanh "
        "hidden layers of 200 units in encoder and decoder, Bernoulli decoder), trained on "
        f"dynamically binarized images for {steps} steps of batch 100 "
        f"on {machine()} (AdamW lr 1e-3). The NLL is -L_k, the importance-"
        f"weighted bound (Burda et al. 2016, eq. 8), on the first {n_test} test images, binarized "
        "once (seed 0); ± is the standard error over images. -L_1 is the negative ELBO.",
        "",
        "Published: Burda et al. 2016, Table 1, VAE with one stochastic layer, k = 5000 "
        "evaluation: 86.76 nats on MNIST, after 3,280 passes over the training data (the 'passes' "
        "column is ours).",
        "",
        f"Reproduce: `difusion experiment vae-nll --budget {budget}` ({total:.1f} min here).",
        "",
        "| data | train min | steps | passes | "
        + "".join(f"NLL k = {k} (nats) | " for k in ks)
        + f"time of k = {ks[-1]} |",
        "|---|---|---|---|" + "---|" * len(ks) + "---|",
    ]
    for r in rows:
        cells = " | ".join(f"{r[f'nll_k{k}']:.2f} ± {r[f'nll_k{k}_se']:.2f}" for k in ks)
        lines.append(
            f"| {r['data']} | {r['train_minutes']} | {r['steps']} | {r['passes']} | {cells} | "
            f"{r[f'seconds_k{ks[-1]}']} s |"
        )
    return write_page(out, lines, rows)


CUSTOM = {"ae-code-size": code_size, "beta-vae": beta_sweep, "vae-nll": vae_nll}

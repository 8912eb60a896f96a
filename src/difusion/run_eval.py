"""`difusion eval`: one entry point, one evaluator per objective, no chain of ifs.

A run folder is scored by the evaluator its objective registers in :data:`EVALUATORS` (segmentation:
Dice/IoU/AP50 next to Otsu; autoencoders: reconstruction, NLL, codebook; every generative model,
DDPM or flow: samples scored by FID/KID/precision-recall, or its likelihood). A samples .npz is
scored as it is. The likelihood follows the model's path, not its objective: the variational bound
(Ho et al. eq. 5) lives on the discrete DDPM path; a continuous path (flow matching) has only the
probability-flow ODE's exact likelihood, which a DDPM run can also ask for with ``--ode-steps``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

import yaml

from difusion.errors import DifusionError


@dataclass
class EvalOptions:
    """The options of `difusion eval` (see its --help)."""

    n: int = 1000
    ref: str | None = None
    features: str = "domain"
    metrics: str = "fid,kid,pr,acc"
    seed: int = 0
    steps: int | None = None
    sampler: str = "ddpm"
    eta: float = 0.0
    guidance: float | None = None
    interval: list[float] | None = None
    n_ref: int | None = None
    out: Path | None = None
    progress: bool = True
    nll: bool = False
    nll_images: int = 200
    ode_steps: int | None = None
    data: str | None = None
    variance: str | None = None


# objective -> "module:function(run_dir, opts) -> list of lines to print"
EVALUATORS = {
    "diffusion": "difusion.run_eval:eval_generative",
    "flow": "difusion.run_eval:eval_generative",
    "autoencoder": "difusion.autoencoders.run:eval_autoencoder_lines",
    "segmentation": "difusion.segmentation.commands:eval_segmentation_lines",
}


def run_objective(run_dir: Path) -> str:
    """The ``objective`` a run folder's config.yaml names (``diffusion`` when it names none)."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise DifusionError(f"{run_dir} is not a run folder (no config.yaml)")
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise DifusionError(
            f"{path} is not valid YAML ({type(e).__name__}); retrain the run"
        ) from None
    return str(values.get("objective", "diffusion")) if isinstance(values, dict) else "diffusion"


def evaluate_target(target: Path, opts: EvalOptions, device) -> list[str]:
    """Score a run folder (by its objective's evaluator) or a samples .npz."""
    if target.is_dir():
        objective = run_objective(target)
        if objective not in EVALUATORS:
            raise DifusionError(f"{target}: runs of objective {objective!r} cannot be evaluated")
        module, name = EVALUATORS[objective].split(":")
        return getattr(importlib.import_module(module), name)(target, opts, device)
    if opts.nll:
        raise DifusionError(f"--nll needs a run folder; {target} is not one")
    if target.is_file():
        out = opts.out or target.with_name(f"{target.stem}-eval-{opts.features}.json")
        return score_samples(target, opts, device, out, {})
    raise DifusionError(f"{target} is neither a samples .npz nor a run folder")


def eval_generative(run_dir: Path, opts: EvalOptions, device) -> list[str]:
    """A DDPM or flow run: its likelihood with ``--nll``, else samples (drawn once, cached in the
    run folder) scored against the reference set."""
    from difusion.runs import load_run, samples_for_eval
    from difusion.sampling.guidance import check_interval
    from difusion.sampling.samplers import check_sampler

    if opts.nll:
        from difusion.metrics.nll import nll_line, run_nll, write_nll

        run = load_run(run_dir, device)
        if opts.ode_steps is not None or not run.path.discrete:
            from difusion.metrics.nll_ode import ode_nll_line, run_ode_nll

            result = run_ode_nll(
                run, n=opts.nll_images, steps=opts.ode_steps or 100, seed=opts.seed,
                device=device, progress=opts.progress,
            )  # fmt: skip
            return [
                ode_nll_line(result),
                f"written: {write_nll(result, opts.out or run_dir / 'nll-ode.json')}",
            ]
        result = run_nll(
            run, n=opts.nll_images, variance=opts.variance, seed=opts.seed, device=device,
            progress=opts.progress,
        )  # fmt: skip
        return [nll_line(result), f"written: {write_nll(result, opts.out or run_dir / 'nll.json')}"]
    check_sampler(opts.sampler)
    if opts.interval is not None:
        check_interval(opts.interval)
    samples_path, run = samples_for_eval(
        run_dir,
        n=opts.n,
        seed=opts.seed,
        steps=opts.steps,
        device=device,
        progress=opts.progress,
        sampler=opts.sampler,
        eta=opts.eta,
        guidance=opts.guidance,
        guidance_interval=opts.interval,
    )
    from difusion.data.latents import image_dataset_of

    settings = run.settings(
        sampler=opts.sampler, steps=opts.steps, guidance=opts.guidance,
        guidance_interval=opts.interval,
    )  # fmt: skip
    setup = {
        "run": str(run_dir),
        "run_step": run.step,
        "sampler": opts.sampler + (f" (eta {opts.eta:g})" if opts.sampler == "ddim" else ""),
        "sampling_steps": len(run.model.timesteps(settings)) - 1,
        "guidance": settings.guidance,
        "guidance_interval": list(settings.guidance_interval),
    }
    opts_ref = opts.ref or f"{image_dataset_of(run.config)}:test"
    out = opts.out or samples_path.parent / f"eval-{opts.features}.json"
    return score_samples(samples_path, opts, device, out, setup, ref=opts_ref)


def score_samples(
    samples_path: Path, opts: EvalOptions, device, out: Path, setup: dict, ref: str | None = None
) -> list[str]:
    """FID/KID/precision-recall/accuracy of a samples .npz against ``ref``; writes JSON to ``out``."""
    from difusion.evaluation import evaluate, file_sha256, load_samples, write_json

    ref = ref or opts.ref
    if not ref:
        raise DifusionError(
            "say which reference set to compare with, e.g. --ref fashion-mnist:test"
        )
    images, labels, info = load_samples(samples_path)
    result = evaluate(
        images,
        labels,
        reference=ref,
        metrics=tuple(m.strip() for m in opts.metrics.split(",") if m.strip()),
        features=opts.features,
        n_reference=opts.n_ref,
        device=device,
        progress=opts.progress,
    )
    result.setup.update(
        setup,
        samples=str(samples_path),
        samples_sha256=file_sha256(samples_path),
        seeds=info["seeds"],
    )
    return [result.table(), f"written: {write_json(result, out)}"]

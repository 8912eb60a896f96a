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
import math
from dataclasses import dataclass
from pathlib import Path

from difusion.errors import ConfigError, DifusionError

MAX_SEED = 2**63 - 1  # seeds of torch.Generator: sample i uses seed + i


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

    def metric_names(self) -> tuple[str, ...]:
        return tuple(m.strip() for m in self.metrics.split(",") if m.strip())

    def check(self) -> EvalOptions:
        """Refuse impossible options with a one-line ConfigError, before anything is loaded,
        drawn or written; returns self."""
        from difusion.evaluation import FEATURES, METRICS, min_samples
        from difusion.sampling.ddpm import VARIANCES
        from difusion.sampling.pipeline import MAX_SAMPLES

        metrics = self.metric_names()
        unknown = [m for m in metrics if m not in METRICS]
        if unknown or not metrics:
            what = f"unknown metric {unknown[0]!r}" if unknown else "no metric in --metrics"
            raise ConfigError(f"{what}; choose from: {', '.join(METRICS)}")
        if self.features not in FEATURES:
            raise ConfigError(
                f"unknown --features {self.features!r}; choose one of: {', '.join(FEATURES)}"
            )
        need = 1 if self.nll else min_samples(metrics)
        for name, value, low, high in (
            ("--n", self.n, need, MAX_SAMPLES),
            ("--seed", self.seed, 0, MAX_SEED),
            ("--steps", self.steps, 1, None),
            ("--n-ref", self.n_ref, need, None),
            ("--nll-images", self.nll_images, 1, None),
            ("--ode-steps", self.ode_steps, 1, None),
        ):
            if value is None and name not in ("--n", "--seed", "--nll-images"):
                continue
            if not isinstance(value, int) or value < low or (high is not None and value > high):
                span = f"in {low}..{high:,}" if high is not None else f"at least {low}"
                why = (
                    f" for {', '.join(metrics)}" if name in ("--n", "--n-ref") and need > 1 else ""
                )
                raise ConfigError(f"{name} must be {span}{why}, got {value}")
        if not (isinstance(self.eta, (int, float)) and 0.0 <= self.eta <= 1.0):
            raise ConfigError(f"--eta must be in [0, 1], got {self.eta}")
        if self.guidance is not None and not (math.isfinite(self.guidance) and self.guidance >= 0):
            raise ConfigError(f"--guidance must be a finite w >= 0, got {self.guidance}")
        if self.variance is not None and self.variance not in VARIANCES:
            raise ConfigError(
                f"unknown --variance {self.variance!r}; choose one of: {', '.join(VARIANCES)}"
            )
        check_out(self.out)
        return self


def check_out(out: Path | None) -> None:
    """``--out`` must name a .json file: eval never writes over a checkpoint, a config, samples or
    anything else that is not its own kind of result."""
    if out is None:
        return
    out = Path(out)
    if str(out).strip() in ("", "."):
        raise ConfigError("--out is empty; name the .json file to write, e.g. --out eval.json")
    if out.is_dir():
        raise ConfigError(
            f"--out {out} is a folder; name the .json file to write, e.g. --out {out / 'eval.json'}"
        )
    if out.suffix.lower() != ".json":
        what = "an existing file" if out.exists() else "not a .json file"
        raise ConfigError(
            f"--out {out} is {what}; eval writes its result only to a .json file "
            f"(e.g. --out {out.with_suffix('.json').name})"
        )
    if out.parent.exists() and not out.parent.is_dir():
        raise ConfigError(f"--out {out}: {out.parent} is a file, not a folder")


# objective -> "module:function(run_dir, opts) -> list of lines to print"
EVALUATORS = {
    "diffusion": "difusion.run_eval:eval_generative",
    "flow": "difusion.run_eval:eval_generative",
    "autoencoder": "difusion.autoencoders.run:eval_autoencoder_lines",
    "segmentation": "difusion.segmentation.commands:eval_segmentation_lines",
    "nflow": "difusion.nflows.run:eval_nflow_lines",
    "hvae": "difusion.hvae.run:eval_hvae_lines",
    "ebm": "difusion.ebm.run:eval_ebm_lines",
}


# Options only some targets read (None: a samples .npz): given for another, they would be ignored
# without a word, so they are refused. The others (--n, --seed, --sampler, --eta, --metrics,
# --features, --out) have defaults that cannot be told from a choice.
GENERATIVE = ("diffusion", "flow")
ONLY_FOR = {
    "--ref": ("ref", (*GENERATIVE, None)),
    "--n-ref": ("n_ref", (*GENERATIVE, None)),
    "--steps": ("steps", GENERATIVE),
    "--guidance": ("guidance", GENERATIVE),
    "--guidance-interval": ("interval", GENERATIVE),
    "--nll": ("nll", GENERATIVE),
    "--ode-steps": ("ode_steps", GENERATIVE),
    "--variance": ("variance", GENERATIVE),
    "--data": ("data", ("segmentation",)),
}


def run_objective(run_dir: Path) -> str:
    """The ``objective`` a run folder's config.yaml names (``diffusion`` when it names none)."""
    from difusion.config import load_yaml

    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise DifusionError(
            f"{run_dir} is not a run folder (no config.yaml); give a folder made by "
            "`difusion train`"
        )
    return str(load_yaml(path).get("objective", "diffusion"))


def check_applies(opts: EvalOptions, objective: str | None, target: Path) -> None:
    """Refuse options that ``objective``'s evaluator (None: a samples .npz) would ignore."""
    for option, (field, objectives) in ONLY_FOR.items():
        if getattr(opts, field) not in (None, False, "") and objective not in objectives:
            what = f"a {objective} run" if objective else "a samples .npz"
            raise DifusionError(f"{option} does not apply to {target}, {what}; drop it")


def evaluate_target(target: Path, opts: EvalOptions, device) -> list[str]:
    """Score a run folder (by its objective's evaluator) or a samples .npz."""
    opts.check()
    if target.is_dir():
        objective = run_objective(target)
        if objective not in EVALUATORS:
            raise DifusionError(f"{target}: runs of objective {objective!r} cannot be evaluated")
        check_applies(opts, objective, target)
        module, name = EVALUATORS[objective].split(":")
        return getattr(importlib.import_module(module), name)(target, opts, device)
    if opts.nll:
        raise DifusionError(f"--nll needs a run folder; {target} is not one")
    if target.is_file():
        check_applies(opts, None, target)
        out = opts.out or target.with_name(f"{target.stem}-eval-{opts.features}.json")
        return score_samples(target, opts, device, out, {})
    raise DifusionError(f"{target} is neither a samples .npz nor a run folder")


def eval_generative(run_dir: Path, opts: EvalOptions, device) -> list[str]:
    """A DDPM or flow run: its likelihood with ``--nll``, else samples (drawn once, cached in the
    run folder) scored against the reference set. Every option is checked before anything is
    drawn or written."""
    from difusion.data.latents import image_dataset_of
    from difusion.evaluation import check_same_shape, reference_data
    from difusion.runs import load_run, samples_for_eval

    run = load_run(run_dir, device)
    if opts.nll:
        from difusion.metrics.nll import nll_line, run_nll, write_nll

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
    if len(run.shape) != 3:
        raise DifusionError(f"{run_dir} is a run on 2-D points; evaluation scores images")
    settings = run.settings(
        n=opts.n, seed=opts.seed, sampler=opts.sampler, steps=opts.steps, eta=opts.eta,
        guidance=opts.guidance, guidance_interval=opts.interval,
    ).check()  # fmt: skip
    check_steps(run, settings, opts.steps)
    opts_ref = opts.ref or f"{image_dataset_of(run.config)}:test"
    if run.model.decode is None:  # latent runs: the decoder's image shape is checked after
        check_same_shape(run.shape, opts_ref, reference_data(opts_ref).data.shape[1:])
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
    setup = {
        "run": str(run_dir),
        "run_step": run.step,
        "sampler": opts.sampler + (f" (eta {opts.eta:g})" if opts.sampler == "ddim" else ""),
        "sampling_steps": len(run.model.timesteps(settings)) - 1,
        "guidance": settings.guidance,
        "guidance_interval": list(settings.guidance_interval),
    }
    out = opts.out or samples_path.parent / f"eval-{opts.features}.json"
    return score_samples(samples_path, opts, device, out, setup, ref=opts_ref)


def check_steps(run, settings, steps: int | None) -> None:
    """Refuse ``--steps`` beyond what the sampler can walk on this run (a discrete sampler takes
    at most T steps), rather than quietly walking fewer than asked."""
    if steps is None or settings.sampler.startswith("fm-"):  # ODE solvers take any number
        return
    most = len(run.model.timesteps(settings.replace(steps=1 << 30))) - 1
    if steps > most:
        raise ConfigError(
            f"--steps {steps} is more than the {settings.sampler} sampler can take on this run "
            f"(at most {most}, one per time step of its schedule); give --steps {most} or fewer"
        )


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

"""``difusion export RUN --to diffusers OUT``: a DDPM or flow run as a diffusers pipeline folder.

OUT is what ``DDPMPipeline.save_pretrained`` writes (safetensors only): ``model_index.json``,
``unet/`` (the run's EMA network in :class:`~difusion.hub.model.DifusionUNet`, its config the run's
config) and ``scheduler/``:

- a DDPM run: ``DDPMScheduler`` with ``trained_betas`` = the run's beta_1..beta_T (Ho et al. eq. 2;
  the schedule, T and any zero-terminal-SNR rescaling exactly as trained), ``prediction_type``
  epsilon / sample / v_prediction for eps / x0 / v, ``clip_sample`` = ``diffusion.clip_x0``, and
  ``variance_type`` fixed_large (sigma_t^2 = beta_t), fixed_small (beta_tilde_t, eq. 7) or
  learned_range (improved DDPM eq. 15) for ``diffusion.variance`` beta, beta_tilde or learned;
  ``timestep_spacing`` linspace, the lab's ``--steps`` respacing of the ancestral sampler.
- a flow run: ``FlowMatchEulerDiscreteScheduler`` (shift 1): sigma = t, x_t = (1 - t) x_0 + t eps,
  model output = the velocity eps - x_0.

An imported run (:mod:`difusion.hub.imports`) goes back as the ``UNet2DModel`` it came from. The
folder is written beside OUT and renamed into place, so OUT is never half-written.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from difusion.config import Config, load_run_config
from difusion.diffusion.flow import TIME_SCALE
from difusion.errors import DifusionError
from difusion.files import FileWriteError, describe_os_error, write_text
from difusion.runs import TrainedRun, load_run
from difusion.sampling.diffusers_bridge import PREDICTION_TYPES, DiffusersNetwork

TO_DIFFUSERS = {ours: theirs for theirs, ours in PREDICTION_TYPES.items()}  # eps -> epsilon, ...
VARIANCE_TYPES = {"beta": "fixed_large", "beta_tilde": "fixed_small", "learned": "learned_range"}
FLOW_TIMESTEPS = 1000  # FlowMatchEulerDiscreteScheduler: timestep = 1000 sigma
IMPORT_HINT = "import difusion.hub.model"  # what a script runs before from_pretrained


def diffusers_module():
    """diffusers, imported offline (HF_HUB_OFFLINE=1: nothing here downloads), or a one-line error."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import diffusers
    except ModuleNotFoundError:
        raise DifusionError(
            "handing runs to and from diffusers needs diffusers: pip install diffusers"
        ) from None
    return diffusers


def check_exportable(cfg: Config, run_dir: Path) -> None:
    """Refuse, in one line, a run that no diffusers pipeline can sample as trained."""
    if cfg.objective not in ("diffusion", "flow"):
        raise DifusionError(
            f"{run_dir} is a {cfg.objective} run; only diffusion and flow runs export to diffusers"
        )
    if cfg.model.kind != "unet":
        raise DifusionError(
            f"{run_dir} is a run on 2-D points; diffusers' DDPMPipeline draws images, so only "
            "image runs export"
        )
    if cfg.data.name == "latents":
        raise DifusionError(
            f"{run_dir} is a latent diffusion run, whose samples need its first stage to decode "
            "them; diffusers' DDPMPipeline has no decoder"
        )
    if cfg.objective == "flow":
        return
    if (kind := cfg.diffusion.path) != "ddpm":
        raise DifusionError(
            f"{run_dir} runs on the {kind} path; diffusers' DDPMScheduler holds DDPM paths only"
        )
    if cfg.diffusion.prediction not in TO_DIFFUSERS:
        raise DifusionError(
            f"{run_dir} predicts {cfg.diffusion.prediction} (E[x_(t-1) | x_t]), which no diffusers "
            "scheduler reads; runs that predict eps, x0 or v export (epsilon, sample, v_prediction)"
        )


def check_out(out: Path, marker: str, overwrite: bool, what: str) -> None:
    """OUT must be new or empty, or (with ``overwrite``) hold a previous ``what`` (it has ``marker``)."""
    if out.exists() and not out.is_dir():
        raise DifusionError(f"{out} is a file; name a folder for the {what}")
    if out.is_dir() and any(out.iterdir()):
        if not (out / marker).exists():
            raise DifusionError(f"{out} is a folder that holds other files; name a new folder")
        if not overwrite:
            raise DifusionError(f"{out} holds a {what} already; pass --overwrite to replace it")


@contextlib.contextmanager
def atomic_folder(out: Path) -> Iterator[Path]:
    """A hidden folder beside ``out`` (``.OUT.tmp-PID``) to write into, renamed to ``out`` at the
    end (an old ``out`` is moved aside first, then deleted); removed if the writing fails. A
    reader, a kill or a full disk sees the old folder or the new one, never half of one."""
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        yield tmp
        if out.exists():
            os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, OSError):
            raise FileWriteError(describe_os_error(e, out)) from None
        raise


def scheduler_for(d, cfg: Config, run: TrainedRun):
    """The run's schedule, prediction, clipping and variance as a diffusers scheduler."""
    if cfg.objective == "flow":
        return d.FlowMatchEulerDiscreteScheduler(num_train_timesteps=FLOW_TIMESTEPS, shift=1.0)
    dc = cfg.diffusion
    return d.DDPMScheduler(
        num_train_timesteps=run.path.T,
        trained_betas=run.path.beta[1:].tolist(),
        prediction_type=TO_DIFFUSERS[dc.prediction],
        variance_type=VARIANCE_TYPES[dc.variance],
        clip_sample=dc.clip_x0,
        clip_sample_range=1.0,
        timestep_spacing="linspace",
    )


def lab_unet(cfg: Config, run: TrainedRun):
    """The run's EMA network inside :class:`DifusionUNet`, with diffusers' clock (model.py)."""
    from difusion.hub.model import DifusionUNet

    flow = cfg.objective == "flow"
    c, h, w = run.shape
    learn_sigma = cfg.diffusion.learn_sigma
    unet = DifusionUNet(
        run_config=cfg.to_dict(),
        in_channels=c,
        sample_size=h if h == w else [h, w],
        num_classes=run.num_classes,
        time_scale=TIME_SCALE / FLOW_TIMESTEPS if flow else run.path.time_scale,
        time_shift=0.0 if flow else 1.0,
        learn_sigma=learn_sigma,
        learned_variance=learn_sigma and not flow and cfg.diffusion.variance == "learned",
        step=run.step,
    )
    unet.network.load_state_dict(run.network.state_dict())
    return unet.eval()


def export_run(run_dir: str | Path, out: str | Path, *, overwrite: bool = False) -> list[str]:
    """Write ``run_dir`` as a diffusers pipeline folder ``out``; returns notes for the user."""
    run_dir, out = Path(run_dir), Path(out)
    d = diffusers_module()
    cfg = load_run_config(run_dir)
    check_exportable(cfg, run_dir)
    check_out(out, "model_index.json", overwrite, "diffusers export")
    run = load_run(run_dir)
    imported = isinstance(run.network, DiffusersNetwork)
    unet = run.network.unet if imported else lab_unet(cfg, run)
    pipe = d.DDPMPipeline(unet=unet, scheduler=scheduler_for(d, cfg, run))
    notes = [] if imported else [f"load it with `{IMPORT_HINT}` first (docs/diffusers.md)"]
    if run.model.num_classes is not None:
        trained = cfg.train.p_uncond > 0
        notes.append(
            "class-conditional: DDPMPipeline passes no labels, so it samples the null class"
            + (
                " (the unconditional model trained by label dropout)"
                if trained
                else ", which train.p_uncond = 0 never trained"
            )
            + "; pass class_labels to pipe.unet in your own loop for a class"
        )
    if cfg.objective == "flow":
        notes.append(
            "flow: DDPMPipeline steps sigma = 1 .. 1/1000, then 0; set the scheduler's sigmas for "
            "the lab's evenly spaced fm-euler grid"
        )
    with atomic_folder(out) as tmp:
        pipe.save_pretrained(tmp, safe_serialization=True)
        write_text(tmp / "README.md", _readme(out, run_dir, run, imported))
    return notes


def _readme(out: Path, run_dir: Path, run: TrainedRun, imported: bool) -> str:
    load = "" if imported else f"{IMPORT_HINT}  # lets diffusers build the lab's network\n"
    return (
        f"# {run_dir.name}, step {run.step}, exported by difusion\n\n"
        f"A diffusers pipeline folder (docs/diffusers.md of difusion).\n\n"
        f"```python\n{load}from diffusers import DiffusionPipeline\n\n"
        f'pipe = DiffusionPipeline.from_pretrained("{out.name}")\n'
        "images = pipe(batch_size=4, num_inference_steps=50).images\n```\n"
    )

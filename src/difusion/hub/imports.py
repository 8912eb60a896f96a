"""``difusion import DIR RUN``: a diffusers pipeline folder as a run folder the lab's samplers open.

Two kinds of folder are read (safetensors weights only; nothing is unpickled):

- one of our exports (``unet/`` holds :class:`~difusion.hub.model.DifusionUNet`): the run comes
  back as it was trained, its config and EMA network (diffusers is not even needed);
- a diffusers ``UNet2DModel`` with a ``DDPMScheduler`` or ``DDIMScheduler`` (``google/ddpm-*``,
  diffusers' training example): the run folder keeps the UNet2DModel's config beside the checkpoint
  (``diffusers_unet.json``; ``load_run`` wraps it in ``DiffusersNetwork``, which maps our t to
  their k = t - 1), and its config.yaml the scheduler as the lab's terms. The scheduler's
  ``alphas_cumprod`` must be one of the lab's schedules at T = ``num_train_timesteps`` (linear,
  cosine = squaredcos_cap_v2, sigmoid, optionally rescaled to zero terminal SNR), matched to 1e-5.

Not imported (a one-line error says which): learned variances (out_channels = 2 in_channels),
class embeddings, thresholding, other schedulers.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import yaml
from safetensors import SafetensorError
from safetensors.torch import load_file

from difusion.build import build_ddpm_path, build_network
from difusion.checkpoint import CHECKPOINT, save_checkpoint
from difusion.config import Config, config_from_dict, save_config
from difusion.diffusion.schedules import SCHEDULES
from difusion.errors import ConfigError, DifusionError
from difusion.files import write_text
from difusion.hub.export import atomic_folder, check_out, diffusers_module
from difusion.sampling.diffusers_bridge import DIFFUSERS_UNET, PREDICTION_TYPES, DiffusersNetwork

WEIGHTS = "diffusion_pytorch_model.safetensors"
SCHEDULERS = ("DDPMScheduler", "DDIMScheduler")
VARIANCES = {"fixed_small": "beta_tilde", "fixed_large": "beta"}  # diffusers' -> diffusion.variance


def _json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise DifusionError(
            f"{path.parent.parent} is not a diffusers pipeline folder (no {path.parent.name}/"
            f"{path.name}); give a folder written by save_pretrained"
        ) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DifusionError(f"{path} is not a JSON file ({e})") from None


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    path = folder / WEIGHTS
    if not path.is_file():
        raise DifusionError(
            f"{folder} has no {WEIGHTS}; difusion reads safetensors weights only (never a pickled "
            ".bin): convert it with diffusers' save_pretrained(..., safe_serialization=True)"
        )
    try:
        return load_file(path)
    except (SafetensorError, OSError) as e:
        raise DifusionError(f"{path} is corrupt or truncated ({e})") from None


def _load(module: torch.nn.Module, weights: dict[str, torch.Tensor], src: Path) -> None:
    try:
        module.load_state_dict(weights, strict=True)
    except RuntimeError as e:
        raise DifusionError(
            f"{src}/unet does not fit its config ({str(e).splitlines()[0]})"
        ) from None


def import_pipeline(src: str | Path, out: str | Path, *, overwrite: bool = False) -> str:
    """Write the pipeline folder ``src`` as the run folder ``out``; returns what was imported."""
    src, out = Path(src), Path(out)
    if not src.is_dir():
        raise DifusionError(f"{src} is not a folder; give a diffusers pipeline folder")
    unet_config = _json(src / "unet" / "config.json")
    kind = unet_config.get("_class_name")
    check_out(out, CHECKPOINT, overwrite, "run")
    if kind == "DifusionUNet":
        return _restore_export(src, out, unet_config)
    if kind == "UNet2DModel":
        return _import_unet2d(src, out, unet_config)
    raise DifusionError(
        f"{src}/unet is a {kind}; difusion imports a UNet2DModel or one of its own exports"
    )


def _restore_export(src: Path, out: Path, c: dict) -> str:
    """One of our exports: the run's config and EMA network, as trained."""
    cfg = config_from_dict(c["run_config"])
    size = c["sample_size"]
    shape = (c["in_channels"], *([size] * 2 if isinstance(size, int) else size))
    network = build_network(cfg, shape, c.get("num_classes"))
    weights = _weights(src / "unet")
    _load(network, {k.removeprefix("network."): v for k, v in weights.items()}, src)
    meta = {"shape": list(shape), "num_classes": c.get("num_classes"), "step": c.get("step", 0)}
    with atomic_folder(out) as tmp:
        save_config(cfg, tmp / "config.yaml")
        save_checkpoint(tmp / CHECKPOINT, model=torch.nn.Module(), ema=network, meta=meta)
    return f"the {cfg.objective} run exported at step {meta['step']}"


def _import_unet2d(src: Path, out: Path, c: dict) -> str:
    """A UNet2DModel and its DDPM/DDIM scheduler: the network as is, the scheduler as config.yaml."""
    sched = _json(src / "scheduler" / "scheduler_config.json")
    name = sched.get("_class_name")
    if name not in SCHEDULERS:
        raise DifusionError(
            f"{src}/scheduler is a {name}; difusion imports a DDPMScheduler or DDIMScheduler"
        )
    if c.get("num_class_embeds") or c.get("class_embed_type"):
        raise DifusionError(f"{src}/unet is class-conditional; difusion imports unconditional ones")
    if c.get("out_channels", 3) != c.get("in_channels", 3):
        raise DifusionError(
            f"{src}/unet outputs {c.get('out_channels')} channels for {c.get('in_channels')} "
            "(a learned variance?); difusion imports networks that predict eps, x0 or v"
        )
    d = diffusers_module()
    scheduler = getattr(d, name).from_config(sched)
    sc = scheduler.config
    unsupported = {
        "prediction_type": sc.prediction_type not in PREDICTION_TYPES,
        "variance_type": name == "DDPMScheduler" and sc.variance_type not in VARIANCES,
        "thresholding": sc.thresholding,
        "clip_sample_range": sc.clip_sample and sc.clip_sample_range != 1.0,
    }
    if any(unsupported.values()):
        keys = ", ".join(f"{k}={sc[k]!r}" for k, bad in unsupported.items() if bad)
        raise DifusionError(f"{src}/scheduler has {keys}, which the lab's samplers do not do")
    cfg = Config(name=src.name)
    size = c.get("sample_size", 32)
    h, w = (size, size) if isinstance(size, int) else size
    cfg.data.name, cfg.data.channels = "folder", c.get("in_channels", 3)
    cfg.data.image_size = h if h == w else None
    cfg.diffusion.T = sc.num_train_timesteps
    cfg.diffusion.prediction = PREDICTION_TYPES[sc.prediction_type]
    cfg.diffusion.variance = VARIANCES.get(getattr(sc, "variance_type", None), "beta_tilde")
    cfg.diffusion.clip_x0 = bool(sc.clip_sample)
    cfg.train.precision = "fp32"  # as diffusers runs it
    if name == "DDIMScheduler":
        cfg.sample.sampler = "ddim"
    _match_schedule(cfg, scheduler.alphas_cumprod.double(), src)
    try:
        cfg = config_from_dict(cfg.to_dict())
    except ConfigError as e:
        raise DifusionError(f"{src} does not make a lab run: {e}") from None
    unet = d.UNet2DModel.from_config(c)
    network = DiffusersNetwork(unet)
    _load(unet, _weights(src / "unet"), src)
    header = (
        f"# Imported from the diffusers folder {src} by `difusion import`: the network is the\n"
        f"# UNet2DModel of {DIFFUSERS_UNET}; the model section is not used.\n"
    )
    meta = {"shape": [c.get("in_channels", 3), h, w], "num_classes": None, "step": 0}
    with atomic_folder(out) as tmp:
        write_text(tmp / "config.yaml", header + yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        write_text(tmp / DIFFUSERS_UNET, json.dumps(c, indent=2) + "\n")
        save_checkpoint(tmp / CHECKPOINT, model=torch.nn.Module(), ema=network, meta=meta)
    zts = " rescaled to zero terminal SNR" if cfg.diffusion.zero_terminal_snr else ""
    return (
        f"a UNet2DModel, {cfg.diffusion.schedule} schedule{zts} with T = {cfg.diffusion.T}, "
        f"{cfg.diffusion.prediction} prediction"
    )


def _match_schedule(cfg: Config, alphas_cumprod: torch.Tensor, src: Path) -> None:
    """Set ``cfg.diffusion``'s schedule to the lab's one whose alpha_bar_1..T is the scheduler's
    (diffusers keeps float32 tables: matched to 1e-5), or refuse in one line."""
    for schedule in SCHEDULES:
        for zts in (False, True):
            cfg.diffusion.schedule, cfg.diffusion.zero_terminal_snr = schedule, zts
            try:
                ours = build_ddpm_path(cfg).alpha_bar[1:]
            except ConfigError:  # a schedule that T does not allow
                continue
            if torch.allclose(ours, alphas_cumprod, rtol=1e-5, atol=1e-6):
                return
    raise DifusionError(
        f"{src}/scheduler's betas are none of the lab's schedules ({', '.join(SCHEDULES)}, "
        f"optionally zero terminal SNR) at T = {cfg.diffusion.T}; difusion cannot sample them"
    )

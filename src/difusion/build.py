"""From a config to the objects of a run: the dataset, the network, the path and the model that
sampling sees. The one place that maps an objective to its path and prediction.

It also loads the first stage of latent diffusion (a trained autoencoder) and hands it to the data
layer, which never builds a model itself; so ``build`` sits above the data, the networks, the
samplers and the config, and below training (``[tool.importlinter]`` in pyproject.toml)."""

from __future__ import annotations

from pathlib import Path

import torch

from difusion.checkpoint import CHECKPOINT, load_checkpoint, load_module
from difusion.config import Config, load_run_config
from difusion.data import Dataset, load_dataset
from difusion.data.latents import LatentCodec
from difusion.diffusion import DDPMPath
from difusion.diffusion.flow import FlowPath
from difusion.diffusion.schedules import rescale_zero_terminal_snr
from difusion.diffusion.ve import VEPath
from difusion.errors import ConfigError, DifusionError
from difusion.nn import MLPDenoiser, UNet
from difusion.nn.autoencoders import Autoencoder
from difusion.sampling.pipeline import GenerativeModel


def build_dataset(cfg: Config, split: str | None = None) -> Dataset:
    """The dataset of ``cfg.data`` (for ``latents``, encoded by the first stage in ``data.root``)."""
    d = cfg.data
    return load_dataset(
        d.name,
        split=split or d.split,
        root=None if d.name == "latents" else d.root,
        image_size=d.image_size,
        channels=d.channels,
        distribution=d.distribution,
        n=d.n,
        seed=cfg.train.seed,
        first_stage=load_first_stage(d.root) if d.name == "latents" else None,
    )


def build_network(cfg: Config, shape: tuple[int, ...], num_classes: int | None) -> torch.nn.Module:
    """The denoising network for data of ``shape`` (C, H, W) or (D,), from ``cfg.model``."""
    m = cfg.model
    classes = num_classes if m.class_conditional else None
    if m.class_conditional and not num_classes:
        raise ConfigError(f"model.class_conditional needs labels, and {cfg.data.name} has none")
    if len(shape) == 1:
        if m.kind != "mlp":
            raise ConfigError(f"{cfg.data.name} holds points of shape {shape}; set model.kind=mlp")
        return MLPDenoiser(
            dim=shape[0],
            hidden=m.hidden,
            depth=m.depth,
            num_classes=classes,
            out_dim=shape[0] * (2 if cfg.diffusion.learn_sigma else 1),
        )
    if m.kind != "unet":
        raise ConfigError(f"{cfg.data.name} holds images of shape {shape}; set model.kind=unet")
    p = m.patch_size
    if p < 1 or shape[1] % p or shape[2] % p:
        raise ConfigError(
            f"model.patch_size={p} does not split {cfg.data.name}'s {shape[1]}x{shape[2]} images "
            "into patches; use 1 or a common divisor of height and width"
        )
    widths = [m.base_channels * m.channel_mult[level] for level in m.attention_levels]
    if any(width % m.num_heads for width in widths):
        raise ConfigError(
            f"model.num_heads={m.num_heads} must divide the channels of every attention level "
            f"({', '.join(map(str, widths))} = model.base_channels x model.channel_mult); choose "
            "a divisor, or other base_channels"
        )
    return UNet(
        in_channels=shape[0],
        out_channels=shape[0] * (2 if cfg.diffusion.learn_sigma else 1),  # + v of improved DDPM
        base_channels=m.base_channels,
        channel_mult=tuple(m.channel_mult),
        num_res_blocks=m.num_res_blocks,
        attention_levels=tuple(m.attention_levels),
        num_heads=m.num_heads,
        dropout=m.dropout,
        num_classes=classes,
        use_scale_shift_norm=m.use_scale_shift_norm,
        patch_size=m.patch_size,
    )


def build_ddpm_path(cfg: Config) -> DDPMPath:
    """The DDPM path of ``cfg.diffusion`` (schedule, T, zero terminal SNR)."""
    path = DDPMPath.from_schedule(cfg.diffusion.schedule, cfg.diffusion.T)
    if cfg.diffusion.zero_terminal_snr:
        path = DDPMPath(rescale_zero_terminal_snr(path.beta[1:]))
    return path


def build_path(cfg: Config):
    """The run's own Gaussian path: the flow path of ``cfg.flow`` for ``objective: flow``, else
    the path of ``cfg.diffusion``: DDPM, or the Step-by-Step tutorial's VE path on T steps."""
    if cfg.objective == "flow":
        return FlowPath(cfg.flow.path, cfg.flow.sigma_min)
    if cfg.diffusion.path == "ve":
        return VEPath(cfg.diffusion.sigma_max, cfg.diffusion.T)
    return build_ddpm_path(cfg)


def build_model(
    cfg: Config,
    network: torch.nn.Module,
    shape: tuple[int, ...],
    num_classes: int | None,
    *,
    autocast_dtype: torch.dtype | None = None,
    device: torch.device | str = "cpu",
) -> GenerativeModel:
    """What sampling needs of a trained network of ``cfg``. A flow network predicts the velocity
    and its x_0 estimate is never clipped (its ODE is sampled as trained); the DDPM samplers'
    grids on its continuous path come from ``cfg.diffusion``'s DDPM path."""
    flow = cfg.objective == "flow"
    return GenerativeModel(
        network=network,
        path=build_path(cfg),
        shape=tuple(shape),
        prediction="velocity" if flow else cfg.diffusion.prediction,
        learn_sigma=cfg.diffusion.learn_sigma and not flow,
        clip_x0=cfg.diffusion.clip_x0 and not flow,
        num_classes=num_classes if cfg.model.class_conditional else None,
        grid_path=build_ddpm_path(cfg) if flow else None,
        decode=latent_decoder(cfg, device),
        autocast_dtype=autocast_dtype,
    )


def latent_decoder(cfg: Config, device):
    """For a model of an autoencoder's latents (``data.name=latents``), the first stage's decoder."""
    if cfg.data.name != "latents":
        return None
    return load_first_stage(cfg.data.root, device).decode


def build_autoencoder(cfg: Config, shape: tuple[int, ...]) -> Autoencoder:
    """The :class:`Autoencoder` that ``cfg.autoencoder`` describes, for data of ``shape``."""
    a = cfg.autoencoder
    if len(shape) != 3:
        raise ConfigError(f"autoencoders need image data; {cfg.data.name} has shape {shape}")
    return Autoencoder(
        a.kind,
        shape,
        code_size=a.code_size,
        network=a.network,
        spatial=a.spatial,
        latent_channels=a.latent_channels,
        channels=tuple(a.channels),
        hidden=a.hidden,
        depth=a.depth,
        likelihood=a.likelihood,
        codebook_size=a.codebook_size,
        code_dim=a.code_dim,
        vq_decay=a.vq_decay,
    )


def load_autoencoder(run_dir: str | Path, device: torch.device | str = "cpu") -> Autoencoder:
    """The trained autoencoder of ``run_dir`` (its EMA weights, in eval mode, fp32): the first
    stage a later chapter builds on. ``.encode(x)``, ``.decode(z)``, ``.latent_shape``, and the
    run's ``.config`` and ``.step``."""
    return load_ema_module(run_dir, "autoencoder", build_autoencoder, device)


def load_ema_module(run_dir: str | Path, objective: str, make, device="cpu") -> torch.nn.Module:
    """``make(cfg, shape)`` with the EMA weights of ``run_dir``'s checkpoint, in eval mode (fp32),
    with the run's ``.config`` and ``.step``; one line if the run has another objective."""
    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir)
    if cfg.objective != objective:
        raise DifusionError(f"{run_dir} is a {cfg.objective} run, not an {objective} run")
    groups, info = load_checkpoint(run_dir / CHECKPOINT, prefixes=("ema",))
    model = make(cfg, tuple(info["meta"]["shape"]))
    load_module(model, groups["ema"], run_dir / CHECKPOINT)
    model.config, model.step = cfg, int(info["meta"]["step"])
    return model.to(device).eval()


def load_first_stage(root: str | Path | None, device: torch.device | str = "cpu") -> LatentCodec:
    """The autoencoder run ``root`` as the first stage of latent diffusion: the codec that the data
    layer encodes ``latents`` with and that decodes a latent model's samples."""
    if root is None:
        raise DifusionError(
            "latents: set data.root to an autoencoder run folder (the first stage), e.g. "
            "data.root=runs/ldm-first-stage"
        )
    if not (Path(root) / "config.yaml").is_file():
        raise DifusionError(
            f"data.root={root} is not an autoencoder run; train the first stage first, e.g. "
            f"`difusion train vae-fmnist-spatial --out {root}`"
        )
    model = load_autoencoder(root, device)
    d = model.config.data
    return LatentCodec(
        root, model, step=model.step, image_dataset=d.name, image_root=d.root, device=device
    )

"""From a config to the objects of a run: the dataset, the network, the path and the model that
sampling sees. The one place that maps an objective to its path and prediction."""

from __future__ import annotations

import torch

from difusion.config import Config
from difusion.data import Dataset, load_dataset
from difusion.diffusion import DDPMPath
from difusion.diffusion.flow import FlowPath
from difusion.diffusion.schedules import rescale_zero_terminal_snr
from difusion.errors import ConfigError
from difusion.nn import MLPDenoiser, UNet
from difusion.sampling.pipeline import GenerativeModel


def build_dataset(cfg: Config, split: str | None = None) -> Dataset:
    d = cfg.data
    return load_dataset(
        d.name,
        split=split or d.split,
        root=d.root,
        image_size=d.image_size,
        channels=d.channels,
        distribution=d.distribution,
        n=d.n,
        seed=cfg.train.seed,
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
    the DDPM path of ``cfg.diffusion``."""
    if cfg.objective == "flow":
        return FlowPath(cfg.flow.path, cfg.flow.sigma_min)
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
    from difusion.data.latents import LatentCodec

    return LatentCodec(cfg.data.root, device).decode

"""Latents of a trained autoencoder as a dataset: the first stage of latent diffusion (Rombach et al. 2022).

``load_dataset("latents", root=AE_RUN)`` encodes the images the autoencoder was trained on with its
encoder (the posterior mean for a VAE) and divides by one scalar, the standard deviation of the
training latents, so the diffusion model sees data of unit variance as its noise schedule assumes
(Rombach et al. Sec. 4.3.2 and App. G: their scale factor). A model of these latents samples in
latent space; :class:`LatentCodec` maps its samples back to images.

The encodings are cached beside the autoencoder's checkpoint (``latents-SPLIT.safetensors``), keyed
by the checkpoint's step, so they are computed once.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from difusion.data.base import Dataset
from difusion.errors import DifusionError

LATENT_SPLITS = ("train", "test")


class LatentCodec:
    """The first stage: ``encode(x) = E(x) / scale`` and ``decode(z) = D(z * scale)``."""

    def __init__(self, root: str | Path, device: torch.device | str = "cpu"):
        from difusion.autoencoders import load_autoencoder

        self.root = Path(root)
        if not (self.root / "config.yaml").is_file():
            raise DifusionError(
                f"data.root={root} is not an autoencoder run; train the first stage first, e.g. "
                f"`difusion train vae-fmnist-spatial --out {root}`"
            )
        self.model = load_autoencoder(self.root, device)
        self.device = device
        self.scale = _stats(self)["scale"]

    @property
    def image_dataset(self) -> str:
        return self.model.config.data.name

    @torch.no_grad()
    def encode(self, x: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
        """Unit-variance latents of images x in [-1, 1] (the scale is fixed by the training split)."""
        return self._raw(x, batch_size) / self.scale

    @torch.no_grad()
    def _raw(self, x: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
        out = [self.model.encode(x[i : i + batch_size].to(self.device)).float().cpu()
               for i in range(0, len(x), batch_size)]  # fmt: skip
        return torch.cat(out)

    @torch.no_grad()
    def decode(self, z: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
        """Images in [-1, 1] from unit-variance latents."""
        out = [self.model.decode(z[i : i + batch_size].to(self.device) * self.scale).float().cpu()
               for i in range(0, len(z), batch_size)]  # fmt: skip
        return torch.cat(out).clamp(-1.0, 1.0)


def _stats(codec: LatentCodec) -> dict:
    """The scale: the standard deviation of all training latents (cached with the step)."""
    path = codec.root / "latent_stats.json"
    step = codec.model.step
    if path.exists():
        stats = json.loads(path.read_text())
        if stats.get("step") == step:
            return stats
    z = _cached_raw(codec, "train")
    stats = {"step": step, "scale": float(z.std()), "mean": float(z.mean()), "n": len(z)}
    _atomic_write_text(path, json.dumps(stats, indent=2) + "\n")
    return stats


def _cached_raw(codec: LatentCodec, split: str) -> torch.Tensor:
    from difusion.data import load_dataset

    path = codec.root / f"latents-{split}.safetensors"
    step = codec.model.step
    if path.exists():
        with safe_open(str(path), framework="pt") as f:
            if (f.metadata() or {}).get("step") == str(step):
                return f.get_tensor("z")
    cfg = codec.model.config
    images = load_dataset(cfg.data.name, split=split, root=cfg.data.root).data
    z = codec._raw(images)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    save_file({"z": z.contiguous()}, str(tmp), metadata={"step": str(step)})
    os.replace(tmp, path)
    return z


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def load_latents(root: str | Path | None, split: str = "train") -> Dataset:
    """The unit-variance latents of the autoencoder run ``root`` for ``split``, with the labels."""
    from difusion.data import load_dataset

    if root is None:
        raise DifusionError(
            "latents: set data.root to an autoencoder run folder (the first stage), e.g. "
            "data.root=runs/ldm-first-stage"
        )
    codec = LatentCodec(root)
    cfg = codec.model.config
    images = load_dataset(cfg.data.name, split=split, root=cfg.data.root)
    z = _cached_raw(codec, split) / codec.scale
    if z.dim() != 4:
        raise DifusionError(
            f"latents: {root} has flat codes of shape {tuple(z.shape[1:])}; latent diffusion needs "
            "a spatial latent (autoencoder.spatial=true)"
        )
    info = {"first_stage": str(root), "scale": codec.scale, "image_shape": list(images.shape)}
    return Dataset(f"latents of {cfg.data.name}", z, images.labels, images.class_names, info)


def image_dataset_of(cfg) -> str:
    """The image dataset a run's samples are compared with: its own, or for a model of latents the
    dataset its autoencoder was trained on."""
    if cfg.data.name != "latents":
        return cfg.data.name
    from difusion.config import load_yaml

    path = Path(cfg.data.root or "") / "config.yaml"
    if not path.is_file():
        raise DifusionError(f"the first stage {cfg.data.root} of this latent run is missing")
    return load_yaml(path).get("data", {}).get("name", "fashion-mnist")

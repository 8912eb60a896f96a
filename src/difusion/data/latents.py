"""Latents of a trained autoencoder as a dataset: the first stage of latent diffusion (Rombach et al. 2022).

The data layer never builds a model: the trained autoencoder is handed in from above as a
:class:`LatentCodec` (``difusion.build.load_first_stage(RUN)`` loads one from an autoencoder run
folder; ``build_dataset`` does it for ``data.name=latents``), and ``load_dataset("latents",
first_stage=codec)`` encodes the images the autoencoder was trained on with its encoder (the
posterior mean for a VAE) and divides by one scalar, the standard deviation of the training
latents, so the diffusion model sees data of unit variance as its noise schedule assumes (Rombach
et al. Sec. 4.3.2 and App. G: their scale factor). A model of these latents samples in latent space;
:meth:`LatentCodec.decode` maps its samples back to images.

The encodings are cached beside the autoencoder's checkpoint (``latents-SPLIT.safetensors``), keyed
by the checkpoint's step, so they are computed once.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import yaml
from safetensors import safe_open
from safetensors.torch import save_file

from difusion.data.base import Dataset
from difusion.errors import DifusionError
from difusion.files import atomic_path, write_text


class LatentCodec:
    """The first stage: ``encode(x) = E(x) / scale`` and ``decode(z) = D(z * scale)``.

    ``model`` is the trained autoencoder (anything with ``encode`` and ``decode``), ``root`` its
    run folder (where the latents and their scale are cached), ``step`` its checkpoint's step (the
    cache key), and ``image_dataset``/``image_root`` the image dataset it was trained on (its name
    and ``data.root``)."""

    def __init__(
        self,
        root: str | Path,
        model,
        *,
        step: int,
        image_dataset: str,
        image_root: str | None = None,
        device: torch.device | str = "cpu",
    ):
        self.root = Path(root)
        self.model, self.step, self.device = model, int(step), device
        self.image_dataset, self.image_root = image_dataset, image_root
        self.scale = _stats(self)["scale"]

    def dataset(self, split: str = "train") -> Dataset:
        """The unit-variance latents of ``split`` (what ``load_dataset("latents", ...)`` returns),
        with the labels of the images."""
        from difusion.data import load_dataset

        images = load_dataset(self.image_dataset, split=split, root=self.image_root)
        z = _cached_raw(self, split) / self.scale
        if z.dim() != 4:
            raise DifusionError(
                f"latents: {self.root} has flat codes of shape {tuple(z.shape[1:])}; latent "
                "diffusion needs a spatial latent (autoencoder.spatial=true)"
            )
        info = dict(first_stage=str(self.root), scale=self.scale, image_shape=list(images.shape))
        return Dataset(
            f"latents of {self.image_dataset}", z, images.labels, images.class_names, info
        )

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
    step = codec.step
    if path.exists():
        stats = json.loads(path.read_text())
        if stats.get("step") == step:
            return stats
    z = _cached_raw(codec, "train")
    stats = {"step": step, "scale": float(z.std()), "mean": float(z.mean()), "n": len(z)}
    write_text(path, json.dumps(stats, indent=2) + "\n")
    return stats


def _cached_raw(codec: LatentCodec, split: str) -> torch.Tensor:
    from difusion.data import load_dataset

    path = codec.root / f"latents-{split}.safetensors"
    step = codec.step
    if path.exists():
        with safe_open(str(path), framework="pt") as f:
            if (f.metadata() or {}).get("step") == str(step):
                return f.get_tensor("z")
    images = load_dataset(codec.image_dataset, split=split, root=codec.image_root).data
    z = codec._raw(images)
    with atomic_path(path) as tmp:
        save_file({"z": z.contiguous()}, str(tmp), metadata={"step": str(step)})
    return z


def image_dataset_of(cfg) -> str:
    """The image dataset a run's samples are compared with: its own, or for a model of latents the
    dataset its autoencoder was trained on."""
    if cfg.data.name != "latents":
        return cfg.data.name
    path = Path(cfg.data.root or "") / "config.yaml"
    if not path.is_file():
        raise DifusionError(f"the first stage {cfg.data.root} of this latent run is missing")
    values = yaml.safe_load(path.read_text()) or {}
    return (values.get("data") or {}).get("name", "fashion-mnist")

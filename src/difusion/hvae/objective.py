"""Hierarchical and diffusion-based VAEs as an objective of the one training loop
(``objective: hvae``).

The loss is -ELBO per dimension in bits on the data's grey levels, the sum of the model's terms
(reconstruction and one KL per stochastic layer), each also logged in bits/dim, so the loss curve
reads in the units of the final measures and of the flows' table. The models compute in fp32: the
autocast setting is not used.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from difusion.build import build_dataset
from difusion.config import Config
from difusion.hvae.distributions import to_levels
from difusion.hvae.models import build_hvae
from difusion.training.objectives import TensorObjective, register


def hvae_loss(
    model: torch.nn.Module, batch: torch.Tensor, generator: torch.Generator, kl_weight: float = 1.0
) -> tuple[torch.Tensor, dict[str, float]]:
    """-ELBO / (D log 2) averaged over the batch of levels, its KL terms weighted by ``kl_weight``
    (1: the ELBO itself; below 1 during warm-up), and each term in bits/dim with the full -ELBO."""
    net = getattr(model, "module", model)  # DistributedDataParallel wraps the network
    scale = net.dim * math.log(2)
    terms = model(batch, generator)  # forward is elbo_terms
    kl = sum(v for name, v in terms.items() if name != "reconstruction")
    loss = (terms["reconstruction"] + kl_weight * kl).mean() / scale
    extras = {name: float(v.mean().detach()) / scale for name, v in terms.items()}
    extras["neg_elbo"] = sum(extras.values())
    return loss, extras


class HVAEObjective(TensorObjective):
    """Draw images as their flat integer levels, return -ELBO in bits/dim."""

    def __init__(self, cfg: Config, device: torch.device):
        super().__init__(cfg, device)
        self.dataset = build_dataset(cfg)
        data = self.dataset.data.float()
        self.shape = tuple(data.shape[1:])
        self.data = to_levels(data, cfg.hvae.levels).to(device)
        self.network = build_hvae(cfg, self.shape).to(device)
        self.measures: dict = {}
        self.calls = 0  # loss evaluations so far: the clock of the KL warm-up
        self.loss_label = f"hvae {cfg.hvae.kind}: -ELBO in bits/dim"

    def describe(self) -> str:
        h = self.cfg.hvae
        what = (
            f"diffusion-based VAE (T = {h.T}, beta = {h.beta:g})"
            if h.kind == "diffusion"
            else f"two-layer VAE ({h.inference}, {h.prior} prior, z1 {h.z1}, z2 {h.z2})"
        )
        return f"{what} on {self.dataset.name} {self.shape} x {len(self.data)}"

    def kl_weight(self) -> float:
        """The KL terms' weight: rises linearly from 0 to 1 over ``hvae.kl_warmup`` steps."""
        warmup = self.cfg.hvae.kl_warmup
        return min(1.0, self.calls / warmup) if warmup else 1.0

    def loss(self, model, batch, generator, autocast_dtype):
        self.calls += 1
        return hvae_loss(model, batch, generator, self.kl_weight())

    def state(self) -> dict[str, torch.Tensor]:
        return {"calls": torch.tensor([self.calls])}

    def load_state(self, tensors: dict[str, torch.Tensor]) -> None:
        if "calls" in tensors:
            self.calls = int(tensors["calls"][0])

    def preview(self, model, out: Path, autocast_dtype) -> None:
        from difusion.hvae.scoring import draw_images
        from difusion.viz import save_grid

        model.eval()
        images, _ = draw_images(model.float().cpu(), self.cfg, 64, self.cfg.sample.seed)
        model.to(self.device)
        save_grid(images, out)

    def finish(self, model, run_dir: Path, autocast_dtype, progress: bool) -> dict[str, Path]:
        from difusion.hvae.scoring import (
            draw_images,
            measure,
            test_data,
            write_measures,
            write_pictures,
        )

        cfg = self.cfg
        model = model.float().cpu().eval()
        self.measures = measure(model, cfg, test_data(cfg, cfg.hvae.eval_n))
        images, info = draw_images(model, cfg, cfg.sample.n, cfg.sample.seed)
        self.measures.update(info, samples=cfg.sample.n)
        out = write_pictures(images, run_dir, cfg.sample.seed)
        out["measures"] = write_measures(self.measures, run_dir / "measures.json")
        return out

    def report_lines(self) -> list[str]:
        from difusion.hvae.scoring import measure_lines

        return [f"- {self.describe()}"] + (measure_lines(self.measures) if self.measures else [])


register("hvae", HVAEObjective)

"""Normalizing flows as an objective of the one training loop (``objective: nflow``).

The loss is the negative log-likelihood per dimension: nats for points; for images, bits on the
data's grey levels (RealNVP: the dequantized bound; IDF: the exact code length), so the loss curve
reads in the units of the final measures. Flows compute in fp32 (log-determinants and the
logistic's tails lose too much in bf16): the autocast setting is not used.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from difusion.build import build_dataset
from difusion.config import Config
from difusion.diffusion.likelihood_ode import standard_normal_log_prob
from difusion.nflows.dequantization import dequantize, dequantized_bits_per_dim, to_levels
from difusion.nflows.models import build_nflow, is_discrete
from difusion.training.objectives import TensorObjective, register


def log_prob(model: torch.nn.Module, x: torch.Tensor, kind: str) -> torch.Tensor:
    """log p(x) per example through ``model``'s forward call, not its ``log_prob`` method: under
    torchrun ``model`` is the DistributedDataParallel wrapper, which has no ``log_prob`` and
    synchronises the gradients of forward calls only. RealNVP: log N(z; 0, I) + log |det dz/dx|;
    IDF: log P_Z(f(x)), exact (no Jacobian term for a bijection of the integers)."""
    net = getattr(model, "module", model)
    if kind == "idf":
        return net.prior.log_prob(model(x))
    z, log_det = model(x)
    return standard_normal_log_prob(z) + log_det


def nflow_loss(
    model: torch.nn.Module, batch: torch.Tensor, cfg: Config, generator: torch.Generator
) -> tuple[torch.Tensor, dict[str, float]]:
    """-log p(x) / D averaged over the batch (points: nats; images: bits on ``nflow.levels``)."""
    net = getattr(model, "module", model)  # DistributedDataParallel wraps the network
    n, dim = cfg.nflow, net.dim
    if n.kind == "idf":
        bits = -log_prob(model, batch, n.kind) / (dim * math.log(2))  # exact: P(x) = P_Z(f(x))
        return bits.mean(), {}
    if not is_discrete(net.shape):
        nll = -log_prob(model, batch, n.kind) / dim
        return nll.mean(), {}
    x = dequantize(batch, n.levels, generator)
    bits = dequantized_bits_per_dim(log_prob(model, x, n.kind), dim, n.levels)
    return bits.mean(), {}


class NFlowObjective(TensorObjective):
    """Draw examples (images as their integer levels), return the flow's NLL per dimension."""

    def __init__(self, cfg: Config, device: torch.device):
        super().__init__(cfg, device)
        self.dataset = build_dataset(cfg)
        data = self.dataset.data.float()
        self.shape = tuple(data.shape[1:])
        if is_discrete(self.shape):
            data = to_levels(data, cfg.nflow.levels)
        self.data = data.to(device)
        self.network = build_nflow(cfg, self.shape).to(device)
        self.measures: dict = {}
        unit = "bits/dim" if is_discrete(self.shape) else "nats/dim"
        what = "exact" if cfg.nflow.kind == "idf" else "dequantized bound"
        self.loss_label = f"{cfg.nflow.kind}: -log p(x) in {unit}" + (
            f" ({what})" if is_discrete(self.shape) else ""
        )

    def describe(self) -> str:
        n = self.cfg.nflow
        return (
            f"{n.kind} ({n.layers} couplings, {n.mask} masks) on {self.dataset.name} "
            f"{self.shape} x {len(self.data)}"
        )

    def loss(self, model, batch, generator, autocast_dtype):
        return nflow_loss(model, batch, self.cfg, generator)

    def preview(self, model, out: Path, autocast_dtype) -> None:
        from difusion.nflows.scoring import draw
        from difusion.viz import plot_points, save_grid

        model.eval()
        samples, _ = draw(model.float().cpu(), self.cfg, 64, self.cfg.sample.seed)
        model.to(self.device)
        if samples.dim() == 4:
            save_grid(samples, out)
        else:
            plot_points(samples, self.dataset.data, out)

    def finish(self, model, run_dir: Path, autocast_dtype, progress: bool) -> dict[str, Path]:
        from difusion.nflows.pictures import write_pictures
        from difusion.nflows.scoring import draw, measure, test_data, write_measures

        cfg = self.cfg
        model = model.float().cpu().eval()
        x = test_data(cfg, cfg.nflow.eval_n)
        self.measures = measure(model, cfg, x)
        samples, info = draw(model, cfg, cfg.sample.n, cfg.sample.seed)
        self.measures.update(info, samples=cfg.sample.n)
        out = write_pictures(samples, x, model, run_dir, cfg.sample.seed)
        out["measures"] = write_measures(self.measures, run_dir / "measures.json")
        return out

    def report_lines(self) -> list[str]:
        from difusion.nflows.scoring import measure_lines

        n = self.cfg.nflow
        lines = [f"- nflow {n.kind}: {n.layers} couplings, {n.mask} masks, width {n.hidden}"]
        return lines + (measure_lines(self.measures) if self.measures else [])


register("nflow", NFlowObjective)

"""Energy-based models and score matching as an objective of the one training loop
(``objective: ebm``).

cd: the loss is contrastive divergence, E_data[E(x)] - E_samples[E(x')] + l2 (E(x)^2 + E(x')^2),
the negatives x' from ``ebm.sgld_steps`` SGLD steps started in the replay buffer (kept in the
checkpoint, so a resumed run continues its chains). dsm: the loss is Song & Ermon's weighted
denoising score matching over the noise ladder. Both compute in fp32: the autocast setting is not
used.
"""

from __future__ import annotations

from pathlib import Path

import torch

from difusion.build import build_dataset
from difusion.config import Config
from difusion.ebm.energy import ReplayBuffer, cd_loss, negatives
from difusion.ebm.models import build_ebm, sigmas_of
from difusion.ebm.score import dsm_loss
from difusion.training.objectives import TensorObjective, register


class EBMObjective(TensorObjective):
    """Draw flat data vectors; return the CD loss of an energy or the DSM loss of a score."""

    def __init__(self, cfg: Config, device: torch.device):
        super().__init__(cfg, device)
        self.dataset = build_dataset(cfg)
        data = self.dataset.data.float()
        self.shape = tuple(data.shape[1:])
        self.data = data.flatten(1).to(device)
        self.network = build_ebm(cfg, self.shape).to(device)
        e = cfg.ebm
        self.sigmas = sigmas_of(cfg)
        self.buffer = ReplayBuffer(
            e.buffer,
            self.data.shape[1],
            e.noise_range,
            torch.Generator().manual_seed(cfg.train.seed),
        )
        self.measures: dict = {}
        self.loss_label = (
            "ebm cd: E(data) - E(SGLD samples) + l2 energies"
            if e.kind == "cd"
            else f"ebm dsm: sigma^2-weighted denoising score matching, {e.levels} levels"
        )

    def describe(self) -> str:
        e = self.cfg.ebm
        what = (
            f"energy MLP, contrastive divergence with {e.sgld_steps} SGLD steps (eps {e.step_size:g})"
            if e.kind == "cd"
            else f"noise-conditional score MLP, DSM on sigma {e.sigma_max:g}..{e.sigma_min:g}"
        )
        return f"{what} on {self.dataset.name} {self.shape} x {len(self.data)}"

    def loss(self, model, batch, generator, autocast_dtype):
        e = self.cfg.ebm
        if e.kind == "dsm":
            return dsm_loss(model, batch, self.sigmas, generator)
        net = getattr(model, "module", model)  # the chains read the bare network, not DDP's wrapper
        x_neg = negatives(
            net,
            self.buffer,
            len(batch),
            e.reinit,
            e.step_size,
            e.sgld_steps,
            generator,
            self.device,
        )
        return cd_loss(model, batch, x_neg, e.l2)

    def state(self) -> dict[str, torch.Tensor]:
        return {"buffer": self.buffer.points} if self.cfg.ebm.kind == "cd" else {}

    def load_state(self, tensors: dict[str, torch.Tensor]) -> None:
        if "buffer" in tensors:
            self.buffer.points = tensors["buffer"].clone()

    def preview(self, model, out: Path, autocast_dtype) -> None:
        from difusion.ebm.scoring import draw
        from difusion.viz import plot_points, save_grid

        model.eval()
        samples, _ = draw(model.float().cpu(), self.cfg, 64, self.cfg.sample.seed)
        model.to(self.device)
        if samples.dim() == 4:
            save_grid(samples.clamp(-1, 1), out)
        else:
            plot_points(samples, self.dataset.data, out)

    def finish(self, model, run_dir: Path, autocast_dtype, progress: bool) -> dict[str, Path]:
        from difusion.ebm.scoring import draw, measure, test_data, write_measures, write_pictures

        cfg = self.cfg
        model = model.float().cpu().eval()
        samples, info = draw(model, cfg, cfg.sample.n, cfg.sample.seed)
        self.measures = measure(samples, cfg, test_data(cfg))
        self.measures.update(info, samples=cfg.sample.n)
        out = write_pictures(samples, test_data(cfg), run_dir, cfg.sample.seed)
        out["measures"] = write_measures(self.measures, run_dir / "measures.json")
        return out

    def report_lines(self) -> list[str]:
        from difusion.ebm.scoring import measure_lines

        return [f"- {self.describe()}"] + (measure_lines(self.measures) if self.measures else [])


register("ebm", EBMObjective)

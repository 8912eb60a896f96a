"""Diffusion as an objective of the training loop: Ho et al. 2020, Algorithm 1."""

from __future__ import annotations

from pathlib import Path

import torch

from difusion.build import build_dataset, build_model, build_network, build_path
from difusion.config import Config
from difusion.diffusion.importance import LossAwareSampler
from difusion.diffusion.losses import diffusion_loss, drop_labels, simple_loss
from difusion.sampling.pipeline import SampleSettings, draw_samples, sample_to_folder
from difusion.training.objectives import Objective, register
from difusion.viz import save_grid


class GenerativeObjective(Objective):
    """What diffusion and flow matching share: the dataset, a network for its shape and the run's
    path, batches of x_0 and labels, the preview grid and the samples of a finished run."""

    def __init__(self, cfg: Config, device: torch.device):
        super().__init__(cfg, device)
        self.dataset = d = build_dataset(cfg)
        self.labels = d.labels.to(device) if d.labels is not None else None
        self.use_labels = cfg.model.class_conditional and self.labels is not None
        self.network = build_network(cfg, d.shape, d.num_classes).to(device)
        self.path = build_path(cfg)

    def describe(self) -> str:
        d = self.dataset
        return f"{d.name} {tuple(d.shape)} x {len(d)}"

    def meta(self) -> dict:
        return {"shape": list(self.dataset.shape), "num_classes": self.dataset.num_classes}

    def batch(
        self, generator: torch.Generator, size: int
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``size`` x_0 from ``self.data`` (mirrored at random with ``data.hflip``) and their
        labels, dropped to the null class with p_uncond for classifier-free guidance."""
        cfg = self.cfg
        idx = torch.randint(len(self.data), (size,), generator=generator)
        idx = idx.to(self.device)
        x0 = self.data[idx]
        if cfg.data.hflip and x0.dim() == 4:
            flip = torch.rand(len(idx), generator=generator).to(self.device) < 0.5
            x0 = torch.where(flip[:, None, None, None], x0.flip(-1), x0)
        y = self.labels[idx] if self.use_labels else None
        if y is not None and cfg.train.p_uncond > 0:  # label dropout for classifier-free guidance
            y = drop_labels(y, cfg.train.p_uncond, self.dataset.num_classes, generator)
        self.last_indices = idx
        return x0, y

    def sampling_model(self, network, autocast_dtype):
        """The model the samplers see: ``network`` on the run's path, with its prediction."""
        d = self.dataset
        return build_model(
            self.cfg,
            network,
            d.shape,
            d.num_classes,
            autocast_dtype=autocast_dtype,
            device=self.device,
        )

    def preview_grid(self, network, out: Path, autocast_dtype, steps: int) -> None:
        """16 samples of the network as a grid (images only): ancestral DDPM on a DDPM path, Euler
        of the ODE on a flow path, ``steps`` steps, no guidance."""
        model = self.sampling_model(network, autocast_dtype)
        if not model.images:
            return
        sampler = "ddpm" if model.path.discrete else "fm-euler"
        settings = SampleSettings.from_config(self.cfg).replace(
            n=16, steps=steps, sampler=sampler, guidance=0.0, guidance_rescale=0.0
        )
        s = draw_samples(model, settings, device=self.device, progress=False)
        out.parent.mkdir(parents=True, exist_ok=True)
        save_grid(s.x.clamp(-1, 1), out, nrow=8)

    def finish(self, model, run_dir: Path, autocast_dtype, progress: bool) -> dict[str, Path]:
        """The run's pictures with its own sampling settings (``sample:``)."""
        d = self.dataset
        return sample_to_folder(
            self.sampling_model(model, autocast_dtype),
            SampleSettings.from_config(self.cfg),
            run_dir,
            device=self.device,
            points=d.data if d.kind == "points" else None,
            progress=progress,
        )


class DiffusionObjective(GenerativeObjective):
    """Draw x_0 (and labels, dropped to the null class with p_uncond for guidance), return L_simple."""

    def __init__(self, cfg: Config, device: torch.device):
        super().__init__(cfg, device)
        self.data = self.dataset.data.to(device)
        c = cfg.diffusion
        self.improved = (
            c.loss != "simple" or c.learn_sigma or c.weighting != "uniform" or c.prediction == "mu"
        )
        self.loss_label = {
            "simple": f"L_simple ({c.prediction})"
            + ("" if c.weighting == "uniform" else f", {c.weighting}"),
            "hybrid": f"L_hybrid ({c.prediction}, learned Sigma)",
            "vlb": f"L_vlb ({c.prediction})"
            + (", importance sampling" if c.importance_sampling else ""),
        }[c.loss]
        self.t_sampler = LossAwareSampler(c.T) if c.importance_sampling else None

    def loss(self, model, batch, generator, autocast_dtype):
        x0, y = batch
        if self.improved:
            return self._improved_loss(model, x0, y, generator, autocast_dtype)
        loss = simple_loss(
            model,
            self.path,
            x0,
            prediction=self.cfg.diffusion.prediction,
            y=y,
            generator=generator,
            autocast_dtype=autocast_dtype,
        )
        return loss, {}

    def _improved_loss(self, model, x0, y, generator, autocast_dtype):
        c = self.cfg.diffusion
        t = t_weight = None
        if self.t_sampler is not None:
            t, t_weight = self.t_sampler.sample(x0.shape[0], generator)
            t = t.to(x0.device)
        loss, vlb_t, extras = diffusion_loss(
            model,
            self.path,
            x0,
            prediction=c.prediction,
            loss=c.loss,
            learn_sigma=c.learn_sigma,
            variance="beta" if c.variance == "learned" else c.variance,
            weighting=c.weighting,
            min_snr_gamma=c.min_snr_gamma,
            hybrid_lambda=c.hybrid_lambda,
            t=t,
            t_weight=t_weight,
            y=y,
            generator=generator,
            autocast_dtype=autocast_dtype,
        )
        if self.t_sampler is not None:
            self.t_sampler.update(t.cpu(), vlb_t)
        return loss, extras

    def state(self) -> dict[str, torch.Tensor]:
        return self.t_sampler.state() if self.t_sampler is not None else {}

    def load_state(self, tensors: dict[str, torch.Tensor]) -> None:
        if self.t_sampler is not None:
            self.t_sampler.load_state(tensors)

    def preview(self, model, out: Path, autocast_dtype) -> None:
        """A quick look during training: 16 samples with the run's sampler on a short grid."""
        self.preview_grid(model, out, autocast_dtype, steps=100)

    def report_lines(self) -> list[str]:
        c = self.cfg.diffusion
        where = f"schedule {c.schedule}, T = {c.T}" if c.path == "ddpm" else self.path.describe()
        return [f"- {where}, prediction {c.prediction}, sampling variance {c.variance}"]


register("diffusion", DiffusionObjective)

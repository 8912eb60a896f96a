"""The autoencoder family as an objective of the one training loop (``objective: autoencoder``)."""

from __future__ import annotations

from pathlib import Path

import torch

from difusion.autoencoders.losses import (
    contractive_penalty,
    corrupt,
    gaussian_kl,
    l1_sparsity,
    reconstruction_nll,
    vq_commitment,
)
from difusion.autoencoders.measures import binarize, codebook_usage
from difusion.build import build_autoencoder, build_dataset
from difusion.config import Config
from difusion.nn.autoencoders import VARIATIONAL
from difusion.training.objectives import Objective, register


def autoencoder_loss(
    model: torch.nn.Module,
    x: torch.Tensor,
    cfg: Config,
    generator: torch.Generator,
    autocast_dtype: torch.dtype | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The loss of ``cfg.autoencoder.kind`` per pixel, averaged over the batch:

    ae   -log p(x | f(x))                                  (MSE for a Gaussian decoder)
    dae  -log p(x | f(x~)),  x~ ~ q(x~ | x)                 (Vincent et al. 2008)
    sae  ae + lambda ||f(x)||_1
    cae  ae + lambda ||J_f(x)||_F^2                         (Rifai et al. 2011, eq. 2)
    vae  -ELBO = -log p(x | z) + beta KL(q(z|x) || N(0, I))  (Kingma & Welling 2014, eq. 10)
    vqvae -log p(x | z_q) + beta_c ||z_e - sg(e)||^2        (van den Oord et al. 2017, eq. 3)
    """
    a = cfg.autoencoder
    net = getattr(model, "module", model)  # DistributedDataParallel wraps the network
    d = x[0].numel()
    inp = x
    if a.kind == "dae":
        inp = corrupt(x, a.noise_std, a.mask_prob, generator)
    if a.kind == "cae":
        inp = x.clone().requires_grad_(True)
    eps = None
    if net.variational:
        eps = torch.randn((len(x), *net.latent_shape), generator=generator).to(x.device)
    with torch.autocast(x.device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
        o = model(inp, eps)
    out = o["out"].float()
    if a.likelihood == "gaussian" and not net.variational:
        recon = (x - out).pow(2).flatten(1).sum(1)  # the squared error; sigma only scales it
    else:
        recon = reconstruction_nll(x, out, a.likelihood, a.sigma)
    mse = (x - net.to_image(out.detach())).pow(2).mean()
    extras: dict[str, float] = {"mse": float(mse)}
    per_example = recon
    if a.kind == "sae":
        l1 = l1_sparsity(o["z"].float())
        per_example = recon + a.sparsity * l1
        extras["l1"] = float(l1.detach().mean())
    elif a.kind == "cae":
        jac = contractive_penalty(inp, o["z"].float(), generator)
        per_example = recon + a.contraction * jac
        extras["jacobian_fro2"] = float(jac.detach().mean())
    elif net.variational:
        kl = gaussian_kl(o["mu"].float(), o["logvar"].float())
        per_example = recon + a.beta * kl
        extras.update(kl=float(kl.detach().mean()), elbo=float(-(recon + kl).detach().mean()))
    elif net.quantizer is not None:
        commit = vq_commitment(o["z_e"].float(), o["z"].float())
        per_example = recon + a.commitment * commit
        if net.training:
            extras["restarts"] = net.quantizer.ema_update(o["z_e"], o["idx"], generator)
        extras["perplexity"] = codebook_usage(o["idx"], net.quantizer.num_codes)["perplexity"]
    return per_example.mean() / d, extras


class AutoencoderObjective(Objective):
    """Draw images (binarized afresh each batch for a Bernoulli decoder), return the kind's loss."""

    def __init__(self, cfg: Config, device: torch.device):
        super().__init__(cfg, device)
        self.dataset = build_dataset(cfg)
        n = cfg.autoencoder.train_subset
        data = self.dataset.data[:n] if n else self.dataset.data
        self.data = data.float().to(device)
        self.network = build_autoencoder(cfg, self.dataset.shape).to(device)
        self.measures: dict = {}
        kind = cfg.autoencoder.kind
        what = "-ELBO per pixel (nats)" if kind in VARIATIONAL else "loss per pixel"
        self.loss_label = f"{kind}: {what}"

    def describe(self) -> str:
        a, net = self.cfg.autoencoder, self.network
        return (
            f"{a.kind} ({a.network}) on {self.dataset.name} {tuple(self.dataset.shape)} x "
            f"{len(self.data)}, latent {tuple(net.latent_shape)}"
        )

    def meta(self) -> dict:
        return {
            "shape": list(self.dataset.shape),
            "num_classes": self.dataset.num_classes,
            "latent_shape": list(self.network.latent_shape),
        }

    def batch(self, generator: torch.Generator, size: int) -> torch.Tensor:
        """``size`` images, drawn with replacement."""
        idx = torch.randint(len(self.data), (size,), generator=generator)
        self.last_indices = idx
        x = self.data[idx.to(self.device)]
        if self.cfg.autoencoder.likelihood == "bernoulli":
            x = binarize(x, generator)  # dynamic binarization (Burda et al. 2016, Sec. 5)
        return x

    def loss(self, model, batch, generator, autocast_dtype):
        return autoencoder_loss(model, batch, self.cfg, generator, autocast_dtype)

    def preview(self, model, out: Path, autocast_dtype) -> None:
        from difusion.autoencoders.pictures import save_reconstructions

        save_reconstructions(model, self.data[:16].cpu(), out)

    def finish(self, model, run_dir: Path, autocast_dtype, progress: bool) -> dict[str, Path]:
        from difusion.autoencoders.scoring import (
            measure,
            test_images,
            write_measures,
            write_pictures,
        )

        model = model.float().cpu().eval()
        x, labels = test_images(self.cfg, self.cfg.autoencoder.eval_n)
        out = write_pictures(model, self.cfg, x, labels, run_dir, self.cfg.sample.seed)
        self.measures = measure(model, self.cfg, x, progress=progress)
        out["measures"] = write_measures(self.measures, run_dir / "measures.json")
        return out

    def report_lines(self) -> list[str]:
        from difusion.autoencoders.scoring import measure_lines

        a = self.cfg.autoencoder
        lines = [
            f"- autoencoder {a.kind}, network {a.network}, latent "
            f"{tuple(self.network.latent_shape)}, decoder {a.likelihood}"
        ]
        return lines + (measure_lines(self.measures) if self.measures else [])


register("autoencoder", AutoencoderObjective)

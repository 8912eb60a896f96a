"""Drawing samples from a flow-matching network with any sampler: what `difusion sample` runs for
an ``objective: flow`` run.

- ``fm-euler``, ``fm-heun``, ``fm-rk4``: the flow ODE itself, from t = 1 to t = 0 on evenly spaced
  times, with the network's own velocity (``flow_ode.solve_flow``).
- every DDPM sampler (ddpm, ddim, dpmpp-2m, euler, heun): the velocity network seen as a denoiser on
  the DDPM path of ``diffusion.schedule`` by matching signal-to-noise ratios
  (``flow_ode.VelocityDenoiser``), then the sampler unchanged.

Classifier-free guidance is applied to the velocity, v = (1 + w) v_c - w v_u (Ho & Salimans eq. 6
is linear in the prediction, and at a fixed time x_0, eps and v are linear in each other), at every
step or only on an interval of noise fractions (``sampling/guidance.py``, Kynkaanniemi et al. 2024).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from difusion.build import build_path
from difusion.config import Config
from difusion.diffusion.flow import FlowPath
from difusion.errors import ConfigError
from difusion.sampling.flow_ode import NetworkVelocity, VelocityDenoiser, flow_times, solve_flow
from difusion.sampling.guidance import check_interval, guides_at, noise_fraction
from difusion.sampling.noise import PerImageNoise, seeds_for
from difusion.sampling.samplers import DEFAULT_STEPS, check_sampler, run_sampler, timesteps_for


class GuidedVelocity:
    """v = (1 + w) v(x, t, y) - w v(x, t, null): classifier-free guidance on a velocity field.

    With ``interval`` (lo, hi) of noise fractions tau = b_t / (a_t + b_t) (t itself on the
    rectified path; ``flow`` gives a_t, b_t), steps outside it use v(x, t, y) alone: one network
    call instead of two (Kynkaanniemi et al. 2024)."""

    def __init__(
        self,
        velocity,
        w: float,
        null_label: int,
        interval: tuple[float, float] = (0.0, 1.0),
        flow: FlowPath | None = None,
    ):
        self.velocity, self.w, self.null_label = velocity, float(w), null_label
        self.interval, self.flow = check_interval(interval), flow or FlowPath()

    def __call__(self, x, t, y=None):
        if y is None:
            return self.velocity(x, t, None)
        if self.interval != (0.0, 1.0):
            tau = noise_fraction(self.flow.a(t), self.flow.b(t))
            if not guides_at(tau, self.interval):
                return self.velocity(x, t, y)
        null = torch.full_like(y, self.null_label)
        both = self.velocity(torch.cat([x, x]), torch.cat([t, t]), torch.cat([y, null]))
        v_c, v_u = both.chunk(2)
        return (1 + self.w) * v_c - self.w * v_u


@torch.no_grad()
def draw_flow_samples(
    network: torch.nn.Module,
    flow: FlowPath,
    ddpm_path,
    shape: tuple[int, ...],
    *,
    n: int = 64,
    seed: int = 0,
    steps: int | None = None,
    sampler: str = "fm-euler",
    eta: float = 0.0,
    variance: str = "beta",
    clip_x0: bool = True,
    labels: torch.Tensor | None = None,
    guidance: float = 0.0,
    guidance_interval: tuple[float, float] = (0.0, 1.0),
    batch_size: int = 256,
    autocast_dtype: torch.dtype | None = None,
    device: torch.device | str = "cpu",
    trajectory: int = 0,
    progress: bool = True,
    data_for_frames: torch.Tensor | None = None,
):
    """n samples of a velocity network (sample i uses seed + i); returns ``generate.Samples``."""
    from difusion.generate import Samples, _frame, bar_interval

    network.eval()
    check_sampler(sampler)
    images = len(shape) == 3
    velocity = NetworkVelocity(network, autocast_dtype)
    if guidance:
        null = getattr(network, "num_classes", None)
        if labels is None or null is None:
            raise ConfigError("guidance needs a class-conditional model (model.class_conditional)")
        velocity = GuidedVelocity(velocity, guidance, null, guidance_interval, flow)
    native = sampler.startswith("fm-")
    if native:
        ts = flow_times(steps or DEFAULT_STEPS[sampler])
    else:
        ts = timesteps_for(sampler, ddpm_path, steps)
        denoiser = VelocityDenoiser(velocity, flow, ddpm_path, clip_x0=clip_x0 and images)
    seeds = seeds_for(n, seed)
    record = (
        set(np.linspace(0, len(ts) - 2, trajectory).round().astype(int).tolist())
        if trajectory
        else set()
    )
    frames, out = [], []
    bar = tqdm(
        total=n * (len(ts) - 1),
        desc="sampling",
        disable=not progress,
        mininterval=bar_interval(),
        leave=False,
    )
    lim = float(data_for_frames.abs().max()) * 1.3 if data_for_frames is not None else 3.0
    for start in range(0, n, batch_size):
        chunk = seeds[start : start + batch_size]
        noise = PerImageNoise(chunk, device)
        x_T = noise.randn((len(chunk), *shape))
        y = labels[start : start + len(chunk)].to(device) if labels is not None else None
        k = len(chunk)

        def callback(step, first=(start == 0), k=k):
            bar.update(k)
            if first and step.index in record:
                frames.append(_frame(step, lim, data_for_frames))

        if native:
            x = solve_flow(velocity, x_T, ts, sampler[3:], y=y, path=flow, callback=callback)
        else:
            x = run_sampler(
                sampler,
                denoiser,
                ddpm_path,
                x_T,
                ts,
                eta=eta,
                variance=variance,
                y=y,
                noise=noise.randn,
                callback=callback,
            )
        out.append(x)
    bar.close()
    return Samples(torch.cat(out).cpu(), labels, frames, seeds)


def sample_flow_run(
    cfg: Config,
    model: torch.nn.Module,
    shape: tuple[int, ...],
    out_dir: Path,
    amp: torch.dtype | None,
    device,
    *,
    num_classes: int | None = None,
    points: torch.Tensor | None = None,
    progress: bool = True,
    n: int | None = None,
    seed: int | None = None,
    steps: int | None = None,
    sampler: str | None = None,
    eta: float | None = None,
    guidance: float | None = None,
    class_id: int | None = None,
) -> dict[str, Path]:
    """A flow run's pictures and .npz, as ``generate.sample_run`` writes them for diffusion."""
    from difusion.generate import grid_columns, labels_for, write_samples
    from difusion.training.flow_objective import flow_path

    sc = cfg.sample
    n = n or sc.n
    labels = labels_for(cfg, num_classes, n, class_id)
    if sc.guidance_rescale:
        raise ConfigError("guidance rescale is not implemented for flow runs; set it to 0")
    samples = draw_flow_samples(
        model,
        flow_path(cfg),
        build_path(cfg),
        shape,
        n=n,
        seed=sc.seed if seed is None else seed,
        steps=steps or sc.steps,
        sampler=sc.sampler if sampler is None else sampler,
        eta=sc.eta if eta is None else eta,
        variance=cfg.diffusion.variance,
        clip_x0=cfg.diffusion.clip_x0,
        labels=labels,
        guidance=sc.guidance if guidance is None else guidance,
        guidance_interval=tuple(sc.guidance_interval),
        batch_size=sc.batch_size,
        autocast_dtype=amp,
        device=device,
        trajectory=40,
        progress=progress,
        data_for_frames=points[:2000] if points is not None else None,
    )
    nrow = grid_columns(n, num_classes) if labels is not None and class_id is None else None
    return write_samples(samples, out_dir, points, nrow=nrow)
